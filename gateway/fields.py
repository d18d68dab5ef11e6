"""Input field types that every way in shares (the HTTP API, the CSV import): bounded, finite,
printable — everything a user can get wrong is refused with a message saying what."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from gateway import xmltext
from gateway.targeting.geo import crossing_edges, ring_area_deg2


def _printable(value: str) -> str:
    # NUL and other control characters break SMS and PostgreSQL text alike; what XML 1.0 forbids
    # would break the action's CAP export (gateway/xmltext.py). DEL is allowed by XML, not by us.
    bad = xmltext.first_forbidden(value) or ("\x7f" if "\x7f" in value else None)
    if bad is not None:
        raise ValueError(f"contains the control or non-character U+{ord(bad):04X}; remove it")
    return value


def _trimmed(max_length: int) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)


# Non-empty printable text, trimmed, of at most so many characters. One alias per length: a type
# checker reads an annotation as written, it does not run a function that would build one.
Text100 = Annotated[str, _trimmed(100), AfterValidator(_printable)]
Text200 = Annotated[str, _trimmed(200), AfterValidator(_printable)]
Text500 = Annotated[str, _trimmed(500), AfterValidator(_printable)]
Text1000 = Annotated[str, _trimmed(1000), AfterValidator(_printable)]


Id = Annotated[int, Field(ge=1, le=2**31 - 1)]
# RULE: every number the API takes is bounded and finite.
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
# A whole number of metres, as JSON's integer: `true` or "100" is a mistake, not a radius.
Radius = Annotated[
    int, Field(strict=True, gt=0, le=1_000_000, description="Radius in metres (at most MAX_RADIUS_M).")
]
MAX_CORNERS = 200


def _ring(corners: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """A polygon with an inside: the closing corner dropped, 3+ corners, no crossing edges."""
    ring = corners[:-1] if len(corners) > 1 and corners[0] == corners[-1] else corners
    if len(set(ring)) < 3:
        raise ValueError("a polygon needs at least three different corners")
    crossing = crossing_edges(ring)
    if crossing is not None:
        i, j = crossing
        raise ValueError(
            f"edges {i + 1} and {j + 1} of the polygon cross each other; draw it without crossings"
        )
    if ring_area_deg2(ring) < 1e-12:
        raise ValueError("the polygon's corners lie on one line: it has no inside")
    return ring


PolygonIn = Annotated[
    list[tuple[Latitude, Longitude]],
    Field(
        min_length=3,
        max_length=MAX_CORNERS,
        description="The area as corners [[lat, lon], …] (the ring closes itself); instead of lat, lon and "
        "radius_m, which are then derived: its centre and the circle around it.",
    ),
    AfterValidator(_ring),
]
# Days the API accepts (statistics periods, pauses): date arithmetic near year 1 or 9999
# overflows, and no Burgernet data lies outside these.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2199, 12, 31)
Day = Annotated[date, Field(ge=FIRST_DAY, le=LAST_DAY)]

# Postcodes of the countries our border regions touch.
POSTCODE_FORMATS = {
    "NL": (re.compile(r"^[1-9][0-9]{3} ?[A-Z]{2}$"), "four digits and two letters, like 3511 AB"),
    "BE": (re.compile(r"^[1-9][0-9]{3}$"), "four digits, like 2000"),
    "DE": (re.compile(r"^[0-9]{5}$"), "five digits, like 52062"),
}
_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


def minutes_of(hhmm: str | None) -> int | None:
    if hhmm is None:
        return None
    match = _TIME.match(hhmm)
    if not match:
        raise ValueError("use 24-hour HH:MM, like 07:30")
    return int(match[1]) * 60 + int(match[2])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
