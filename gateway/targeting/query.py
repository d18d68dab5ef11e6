"""The SQL edge of targeting: fetch the registrations under the circle's tiles, then select."""

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, or_, select
from sqlalchemy.orm import Session

from gateway.storage.models import Address, Channel, Participant
from gateway.targeting.geo import tile_ranges
from gateway.targeting.select import Recipient, select_recipients

# Column order is Registration's.
_REGISTRATION_COLUMNS = (
    Address.id,
    Address.participant_id,
    Participant.phone,
    Address.channel,
    Address.lat,
    Address.lon,
    Address.window_start,
    Address.window_end,
    Participant.pause_from,
    Participant.pause_until,
    Participant.unsubscribed_at.is_not(None),
    Participant.language,
)


def registrations_in_tiles(lat: float, lon: float, radius_m: float):
    """SELECT of every registration whose address tile may overlap the circle."""
    ranges = tile_ranges(lat, lon, radius_m)
    return (
        select(*_REGISTRATION_COLUMNS)
        .join(Participant, Participant.id == Address.participant_id)
        .where(or_(*(Address.tile.between(lo, hi) for lo, hi in ranges)))
    )


def find_recipients(
    db: Session | Connection,
    lat: float,
    lon: float,
    radius_m: float,
    channels: Iterable[Channel],
    now: datetime,
) -> list[Recipient]:
    """The recipients of an action at `now`: one per phone number (see select_recipients)."""
    rows = db.execute(registrations_in_tiles(lat, lon, radius_m))
    return select_recipients(rows, lat, lon, radius_m, channels, now)
