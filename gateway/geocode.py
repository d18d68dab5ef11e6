"""Where an address is: the console's address box (postcode + house number → a point).

First the project's own registered addresses (participants' addresses carry coordinates), then,
when GEOCODER_URL is set, a PDOK Locatieserver compatible search (docs/areas.md). The answer is a
point only: nothing says whether or who is registered there beyond what the map already shows a
centralist (the live recipient count)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.storage.models import Address

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 5.0
_POINT = re.compile(r"^POINT\(\s*(-?[0-9.]+)\s+(-?[0-9.]+)\s*\)$")


@dataclass(frozen=True, slots=True)
class Place:
    lat: float
    lon: float
    source: str  # "registered" or "geocoder"
    label: str


class GeocoderUnavailable(Exception):
    """The configured geocoder did not answer usefully."""


def registered(session: Session, postcode: str, house_number: str) -> Place | None:
    """The mean position of the registered addresses with this postcode and house number."""
    row = session.execute(
        select(func.avg(Address.lat), func.avg(Address.lon)).where(
            Address.postcode == postcode, func.upper(Address.house_number) == house_number.upper()
        )
    ).one()
    if row[0] is None:
        return None
    return Place(round(row[0], 6), round(row[1], 6), "registered", f"{postcode} {house_number}")


def pdok(url: str, postcode: str, house_number: str) -> Place | None:
    """PDOK Locatieserver's free search: the first address's centroid (WGS84, `centroide_ll`)."""
    number = re.match(r"[0-9]+", house_number)
    query = f"postcode:{postcode.replace(' ', '')} AND huisnummer:{number[0] if number else ''}"
    try:
        r = httpx.get(
            url,
            params={"q": query, "fq": "type:adres", "rows": 1, "fl": "weergavenaam,centroide_ll"},
            timeout=TIMEOUT_SECONDS,
        )
        r.raise_for_status()
        docs = r.json()["response"]["docs"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        log.warning("geocoder failed: %s", type(exc).__name__)
        raise GeocoderUnavailable from None
    if not docs:
        return None
    match = _POINT.match(str(docs[0].get("centroide_ll", "")))
    if match is None:
        raise GeocoderUnavailable
    lon, lat = float(match[1]), float(match[2])
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise GeocoderUnavailable
    return Place(
        round(lat, 6),
        round(lon, 6),
        "geocoder",
        str(docs[0].get("weergavenaam") or f"{postcode} {house_number}"),
    )


def locate(session: Session, geocoder_url: str, postcode: str, house_number: str) -> Place | None:
    return registered(session, postcode, house_number) or (
        pdok(geocoder_url, postcode, house_number) if geocoder_url else None
    )
