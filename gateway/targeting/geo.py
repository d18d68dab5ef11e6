"""Great-circle distance and the tile grid that lets any SQL database find a circle fast.

The grid: the earth is cut into cells of TILE_DEG × TILE_DEG degrees and every address stores
the integer id of its cell. A circle becomes a handful of contiguous id ranges (one per row of
cells), which a plain B-tree index answers on PostgreSQL and SQLite alike — no PostGIS needed.
The exact distance is checked afterwards in Python, so the grid only has to over-select.
"""

import math

EARTH_RADIUS_M = 6_371_008.8  # mean earth radius (IUGG)
TILE_DEG = 0.01  # ~1.1 km north–south, ~0.7 km east–west in the Netherlands
_COLS = 36_000  # tiles per row: 360° / TILE_DEG
# A point exactly on the radius counts as inside; coordinates are never better than this anyway.
EDGE_TOLERANCE_M = 0.01
# tile_ranges covers a circle this much larger: more than the edge tolerance, and enough that
# float rounding at a cell border can never drop a point (over-selecting costs nothing).
_RANGE_MARGIN_M = 1.0


def tile_of(lat: float, lon: float) -> int:
    """The grid cell of a point."""
    row = math.floor((lat + 90.0) / TILE_DEG)
    col = math.floor((lon + 180.0) / TILE_DEG) % _COLS
    return row * _COLS + col


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def destination(lat: float, lon: float, bearing_deg: float, distance: float) -> tuple[float, float]:
    """The point `distance` metres from (lat, lon) along the initial bearing (for tests, seeds)."""
    d = distance / EARTH_RADIUS_M
    b = math.radians(bearing_deg)
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2))
    return math.degrees(p2), (math.degrees(l2) + 540.0) % 360.0 - 180.0


def tile_ranges(lat: float, lon: float, radius_m: float) -> list[tuple[int, int]]:
    """Inclusive tile-id ranges that together cover the circle (one range per grid row).

    Each row's range spans only the circle's east–west extent within that row's band of latitude
    (not the whole bounding box), so the query reads ~20% fewer rows than a bounding box would.
    """
    radius = radius_m + _RANGE_MARGIN_M
    d = radius / EARTH_RADIUS_M  # angular radius
    dlat = math.degrees(d)
    lat_lo, lat_hi = max(-90.0, lat - dlat), min(90.0, lat + dlat)
    row_lo = math.floor((lat_lo + 90.0) / TILE_DEG)
    row_hi = math.floor((lat_hi + 90.0) / TILE_DEG)
    p0 = math.radians(lat)
    # The latitude where the circle is widest east–west (a little poleward of its centre).
    sin_widest = math.sin(p0) / math.cos(d) if d < math.pi / 2 else 2.0
    if abs(sin_widest) >= 1.0 or max(abs(lat_lo), abs(lat_hi)) >= 89.9:
        # The circle reaches (nearly) a pole or is half the earth: take whole rows.
        row_dlon = [180.0] * (row_hi - row_lo + 1)
    else:
        widest = math.degrees(math.asin(sin_widest))
        cos_d, sin_p0, cos_p0 = math.cos(d), math.sin(p0), math.cos(p0)
        row_dlon = []
        for row in range(row_lo, row_hi + 1):
            # The half-width grows towards `widest` and shrinks away from it, so within this row's
            # band it is largest at the band's latitude nearest to `widest`.
            band_lo = max(lat_lo, row * TILE_DEG - 90.0)
            band_hi = min(lat_hi, (row + 1) * TILE_DEG - 90.0)
            p = math.radians(min(max(widest, band_lo), band_hi))
            q = (cos_d - sin_p0 * math.sin(p)) / (cos_p0 * math.cos(p))
            row_dlon.append(math.degrees(math.acos(max(-1.0, min(1.0, q)))))
    ranges = []
    for row, dlon in zip(range(row_lo, row_hi + 1), row_dlon):
        base = row * _COLS
        col_lo = math.floor((lon - dlon + 180.0) / TILE_DEG)
        col_hi = math.floor((lon + dlon + 180.0) / TILE_DEG)
        if col_hi - col_lo + 1 >= _COLS:
            ranges.append((base, base + _COLS - 1))
        elif col_lo < 0:  # wraps west of the antimeridian
            ranges += [(base, base + col_hi), (base + col_lo + _COLS, base + _COLS - 1)]
        elif col_hi >= _COLS:  # wraps east of it
            ranges += [(base + col_lo, base + _COLS - 1), (base, base + col_hi - _COLS)]
        else:
            ranges.append((base + col_lo, base + col_hi))
    return ranges


class Circle:
    """Membership test for one circle, with the haversine constants computed once."""

    def __init__(self, lat: float, lon: float, radius_m: float):
        self.lat, self.lon, self.radius = lat, lon, radius_m + EDGE_TOLERANCE_M
        self.p = math.radians(lat)
        self.cos_p = math.cos(self.p)
        # sin²(d/2R) threshold for the haversine comparison, avoiding asin/sqrt per point.
        self.h_max = math.sin(min(math.pi, self.radius / EARTH_RADIUS_M) / 2) ** 2

    def closeness(self, lat: float, lon: float) -> float:
        """The haversine term sin²(d/2R): grows with distance d, compared to `h_max`."""
        p2 = math.radians(lat)
        s1 = math.sin((p2 - self.p) / 2)
        s2 = math.sin(math.radians(lon - self.lon) / 2)
        return s1 * s1 + self.cos_p * math.cos(p2) * s2 * s2

    def contains(self, lat: float, lon: float) -> bool:
        return self.closeness(lat, lon) <= self.h_max
