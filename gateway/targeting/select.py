"""Who gets an action: the pure core of targeting, with no database in sight.

Input is every registration (participant × address) that the grid pre-selected; output is one
`Recipient` per phone number. Everything here is plain data so that it can be tested exhaustively
and stays fast at national scale (tens of thousands of rows per action).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from gateway.storage.models import Channel
from gateway.targeting.geo import Circle, Corners, Polygon
from gateway.targeting.windows import next_open, week_minute, week_table

LOCAL_TZ = ZoneInfo("Europe/Amsterdam")


class Registration(NamedTuple):
    """One address of one participant, as targeting sees it (column order matters: SQL rows too)."""

    address_id: int
    participant_id: int
    phone: str
    channel: Channel | str
    lat: float
    lon: float
    windows: str | None  # receive windows (gateway.targeting.windows); None: always
    pause_from: date | None
    pause_until: date | None
    unsubscribed: bool
    language: str = "nl"


@dataclass(frozen=True, slots=True)
class Recipient:
    phone: str
    channel: Channel
    participant_id: int
    address_id: int
    language: str


def is_paused(pause_from: date | None, pause_until: date | None, today: date) -> bool:
    """A pause covers whole local days, both ends inclusive; an open end is open-ended."""
    if pause_from is None and pause_until is None:
        return False
    return (pause_from is None or pause_from <= today) and (pause_until is None or today <= pause_until)


def select_recipients(
    registrations: Iterable[Registration],
    lat: float,
    lon: float,
    radius_m: float,
    channels: Iterable[Channel],
    now: datetime,
    polygon: Corners | None = None,
) -> list[Recipient]:
    """Registrations in the area, reachable now on an allowed channel, one per phone number.

    The area is the circle, or with `polygon` the polygon (lat, lon, radius_m then being a circle
    around it whose centre is the incident: nearness is measured from there)."""
    return one_per_number(eligible(registrations, Circle(lat, lon, radius_m), channels, now, _shape(polygon)))


def _shape(polygon: Corners | None) -> Polygon | None:
    return Polygon([(float(p[0]), float(p[1])) for p in polygon]) if polygon else None


def eligible(
    registrations: Iterable[Registration],
    circle: Circle,
    channels: Iterable[Channel],
    now: datetime,
    polygon: Polygon | None = None,
    *,
    windows: bool = True,
) -> Iterator[tuple[float, Registration]]:
    """(closeness, registration) for each registration that may be alerted at `now`.

    Drops what lies outside the circle (and the polygon, if given), is unsubscribed, paused,
    outside its receive window (local time, so DST is handled by the zone database) or on a
    channel the action does not use. Without `windows` the receive windows are not looked at
    (a message that waits for them, `select_waiting`).
    """
    local = now.astimezone(LOCAL_TZ)
    minute, today = week_minute(local), local.date()
    allowed = {Channel(c).value for c in channels}
    value_of = _VALUE.get
    # Circle.closeness inlined (the same arithmetic, so the same result to the last bit): this
    # loop runs for every candidate row, ~100k for 5 km in a city.
    h_max, p0, cos_p0, lon0 = circle.h_max, circle.p, circle.cos_p, circle.lon
    sin, cos, radians = math.sin, math.cos, math.radians
    in_polygon = polygon.contains if polygon is not None else None
    for reg in registrations:
        (_aid, _pid, _phone, channel, rlat, rlon, wins, pfrom, puntil, unsub, _lang) = reg
        if unsub or value_of(channel) not in allowed:
            continue
        p2 = radians(rlat)
        s1 = sin((p2 - p0) / 2)
        s2 = sin(radians(rlon - lon0) / 2)
        h = s1 * s1 + cos_p0 * cos(p2) * s2 * s2
        if h > h_max:
            continue
        if in_polygon is not None and not in_polygon(rlat, rlon):
            continue
        if wins is not None and windows and not week_table(wins)[minute]:
            continue
        if (pfrom is not None or puntil is not None) and is_paused(pfrom, puntil, today):
            continue
        yield h, reg


# When one number's eligible addresses ask for different channels, the address nearest to the
# incident decides (it is the place the alert is about); at equal distance SMS wins (it does not
# occupy the scarce voice trunk and can be read again), then the oldest address.
_CHANNEL_RANK = {Channel.sms.value: 0, Channel.voice.value: 1}
# Rows carry a Channel or its string value; dict lookups are much cheaper than `.value` or
# `Channel(...)` on an enum (both are Python-level calls).
_VALUE: dict[Channel | str, str] = {**{c: c.value for c in Channel}, **{c.value: c.value for c in Channel}}
_MEMBER: dict[Channel | str, Channel] = {**{c: c for c in Channel}, **{c.value: c for c in Channel}}


def _recipient(reg: Registration) -> Recipient:
    return Recipient(reg[2], _MEMBER[reg[3]], reg[1], reg[0], reg[10])


def _preference(h: float, reg: Registration) -> tuple[float, int, int]:
    """The order in which one number's registrations are preferred (the lowest wins): nearest
    (`h` grows with the distance), then SMS before voice, then the oldest address."""
    return (h, _CHANNEL_RANK[_VALUE[reg[3]]], reg[0])


def one_per_number(candidates: Iterable[tuple[float, Registration]]) -> list[Recipient]:
    """RULE: one message per phone number per action — pick one registration per number: the
    nearest eligible address, at equal distance SMS before voice, then the oldest address."""
    # Per number only the few fields a Recipient needs are kept, not the registration itself: the
    # rows can then be freed while they stream in, which spares the garbage collector ~100k
    # long-lived objects at 5 km.
    best: dict[str, tuple[tuple[float, int, int], int, Channel | str, str]] = {}
    held_for = best.get
    for h, reg in candidates:
        phone = reg[2]
        key = _preference(h, reg)
        held = held_for(phone)
        if held is not None and not key < held[0]:
            continue
        best[phone] = (key, reg[1], reg[3], reg[10])
    return [
        Recipient(phone, _MEMBER[channel], pid, key[2], language)
        for phone, (key, pid, channel, language) in best.items()
    ]


def select_waiting(
    registrations: Iterable[Registration],
    lat: float,
    lon: float,
    radius_m: float,
    channels: Iterable[Channel],
    now: datetime,
    polygon: Corners | None = None,
) -> list[tuple[Recipient, datetime]]:
    """The recipients of a message that waits for their windows instead of skipping them, each
    with when it is due (UTC; `now` when a window is open now). One per number: the address
    whose window opens first, then as `one_per_number`. An address with no window ever open is
    left out; so is a participant paused today (she is asked again by the next message)."""
    local = now.astimezone(LOCAL_TZ)
    best: dict[str, tuple[tuple[datetime, float, int, int], Registration]] = {}
    area = Circle(lat, lon, radius_m)
    for h, reg in eligible(registrations, area, channels, now, _shape(polygon), windows=False):
        opens = next_open(reg[6], local)
        if opens is None:
            continue
        key = (opens.astimezone(UTC), *_preference(h, reg))
        held = best.get(reg[2])
        if held is None or key < held[0]:
            best[reg[2]] = (key, reg)
    return [(_recipient(reg), max(key[0], now.astimezone(UTC))) for key, reg in best.values()]
