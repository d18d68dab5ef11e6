"""Great-circle distance and the tile grid that lets any SQL database find a circle fast.

The grid: the earth is cut into cells of TILE_DEG × TILE_DEG degrees and every address stores
the integer id of its cell. A circle becomes a handful of contiguous id ranges (one per row of
cells), which a plain B-tree index answers on PostgreSQL and SQLite alike — no PostGIS needed.
The exact distance is checked afterwards in Python, so the grid only has to over-select.
"""

import math
from collections.abc import Sequence
from itertools import pairwise

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


# --- polygons -------------------------------------------------------------------------------------

# A point this close to an edge (in degrees, ~0.1 mm) lies on it, and on an edge counts as inside,
# as on a circle's radius.
EDGE_TOLERANCE_DEG = 1e-9
_BANDS_PER_EDGE = 4  # latitude bands of the edge index per polygon edge: ~1–2 edges per band
_MAX_BANDS = 4096

LatLon = tuple[float, float]
# Corners as they come from JSON or the database: [[lat, lon], …] or [(lat, lon), …].
Corners = Sequence[Sequence[float]]


class Polygon:
    """Membership test for a polygon drawn in latitude/longitude (CAP's convention: straight edges
    between the corners, the ring closing itself). Concave shapes and points on an edge work.

    Crossing-number test, with the edges indexed by latitude band so that a point looks only at
    the few edges that span its latitude (a ~2 µs test however many corners the polygon has).
    """

    def __init__(self, corners: list[LatLon]):
        ring = corners[:-1] if len(corners) > 1 and corners[0] == corners[-1] else list(corners)
        self.corners = ring
        self.edges = [(ring[i], ring[(i + 1) % len(ring)]) for i in range(len(ring))]
        self.lat_lo = min(p[0] for p in ring)
        self.lat_hi = max(p[0] for p in ring)
        self.lon_lo = min(p[1] for p in ring)
        self.lon_hi = max(p[1] for p in ring)
        self.bands = min(_MAX_BANDS, _BANDS_PER_EDGE * len(self.edges))
        self.band_deg = (self.lat_hi - self.lat_lo) / self.bands or 1.0
        index: list[list[tuple[float, float, float, float]]] = [[] for _ in range(self.bands)]
        for (alat, alon), (blat, blon) in self.edges:
            lo, hi = self._band(min(alat, blat)), self._band(max(alat, blat))
            for band in range(lo, hi + 1):
                index[band].append((alat, alon, blat, blon))
        self.index = index

    def _band(self, lat: float) -> int:
        return min(self.bands - 1, max(0, int((lat - self.lat_lo) / self.band_deg)))

    def contains(self, lat: float, lon: float) -> bool:
        eps = EDGE_TOLERANCE_DEG
        if not (
            self.lat_lo - eps <= lat <= self.lat_hi + eps and self.lon_lo - eps <= lon <= self.lon_hi + eps
        ):
            return False
        inside = False
        for alat, alon, blat, blon in self.index[self._band(lat)]:
            if alat == blat:  # an east–west edge: never crossed, only touched
                if abs(lat - alat) <= eps and min(alon, blon) - eps <= lon <= max(alon, blon) + eps:
                    return True
                continue
            if not (min(alat, blat) - eps <= lat <= max(alat, blat) + eps):
                continue
            cross = alon + (lat - alat) * (blon - alon) / (blat - alat)  # the edge's longitude here
            if abs(cross - lon) <= eps:
                return True
            # Half-open in latitude, so a ray through a corner counts that corner once.
            if (alat > lat) != (blat > lat) and cross > lon:
                inside = not inside
        return inside

    def centre(self) -> LatLon:
        """The mean of the corners: where the incident is taken to be (nearness, the CAP area)."""
        return (
            sum(p[0] for p in self.corners) / len(self.corners),
            sum(p[1] for p in self.corners) / len(self.corners),
        )

    def enclosing_radius_m(self, lat: float, lon: float) -> float:
        """A radius around (lat, lon) that holds the whole polygon: its farthest corner, with room
        for the edges' being straight in degrees rather than great circles."""
        return max(distance_m(lat, lon, p[0], p[1]) for p in self.corners) * 1.001 + 1.0

    def tile_ranges(self) -> list[tuple[int, int]]:
        """Inclusive tile-id ranges covering the polygon: per grid row, the stretches of longitude
        where the polygon is inside that row's band of latitude — several for a concave shape
        (a U's notch is not read), so that the query over-selects little more than a circle's."""
        margin = EDGE_TOLERANCE_DEG * 10
        row_lo = math.floor((self.lat_lo - margin + 90.0) / TILE_DEG)
        row_hi = math.floor((self.lat_hi + margin + 90.0) / TILE_DEG)
        ranges: list[tuple[int, int]] = []
        for row in range(row_lo, row_hi + 1):
            base = row * _COLS
            band_lo = max(self.lat_lo, row * TILE_DEG - 90.0 - margin)
            band_hi = min(self.lat_hi, (row + 1) * TILE_DEG - 90.0 + margin)
            spans = sorted(
                (
                    max(0, math.floor((west - margin + 180.0) / TILE_DEG)),
                    min(_COLS - 1, math.floor((east + margin + 180.0) / TILE_DEG)),
                )
                for west, east in self._spans(band_lo, band_hi)
            )
            for col_lo, col_hi in spans:
                if ranges and ranges[-1][0] >= base and col_lo + base <= ranges[-1][1] + 1:
                    ranges[-1] = (ranges[-1][0], max(ranges[-1][1], base + col_hi))
                else:
                    ranges.append((base + col_lo, base + col_hi))
        return ranges

    def _spans(self, lat_lo: float, lat_hi: float) -> list[tuple[float, float]]:
        """(west, east) stretches that together hold the polygon between two latitudes.

        Between two consecutive corner latitudes the same edges cross every parallel, in the same
        order (edges do not cross), so the inside is the same pairs of edges; each pair's stretch
        over that slice runs from its western edge's westernmost to its eastern edge's easternmost
        longitude (edges are straight)."""
        cuts = sorted({lat_lo, lat_hi, *(p[0] for p in self.corners if lat_lo < p[0] < lat_hi)})
        spans: list[tuple[float, float]] = []
        for t0, t1 in pairwise(cuts):
            mid = (t0 + t1) / 2
            crossing = sorted(
                (self._lon_at(edge, mid), edge)
                for edge in self.edges
                if min(edge[0][0], edge[1][0]) < mid < max(edge[0][0], edge[1][0])
            )
            for (_, west), (_, east) in zip(crossing[0::2], crossing[1::2]):
                spans.append(
                    (
                        min(self._lon_at(west, t0), self._lon_at(west, t1)),
                        max(self._lon_at(east, t0), self._lon_at(east, t1)),
                    )
                )
        if not spans or lat_lo == lat_hi:  # a band that only touches a corner or an edge
            spans += [
                (min(a[1], b[1]), max(a[1], b[1]))
                for a, b in self.edges
                if lat_lo <= a[0] <= lat_hi or lat_lo <= b[0] <= lat_hi
            ]
        return spans

    @staticmethod
    def _lon_at(edge: tuple[LatLon, LatLon], lat: float) -> float:
        (alat, alon), (blat, blon) = edge
        if alat == blat:
            return min(alon, blon)
        return alon + (lat - alat) * (blon - alon) / (blat - alat)


def crossing_edges(corners: list[LatLon]) -> tuple[int, int] | None:
    """Two edges (their indexes) of the ring that cross each other, or None: such a shape has no
    single inside to alert. Neighbouring edges share a corner and do not count."""
    ring = corners[:-1] if len(corners) > 1 and corners[0] == corners[-1] else list(corners)
    n = len(ring)
    edges = [(ring[i], ring[(i + 1) % n]) for i in range(n)]

    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # the closing edge meets the first at corner 0
            (a, b), (c, d) = edges[i], edges[j]
            if _turn(a, b, c) * _turn(a, b, d) < 0 and _turn(c, d, a) * _turn(c, d, b) < 0:
                return i, j
    return None


def ring_area_deg2(corners: list[LatLon]) -> float:
    """The polygon's area in square degrees (shoelace): zero for a shape with no inside."""
    ring = corners[:-1] if len(corners) > 1 and corners[0] == corners[-1] else list(corners)
    twice = sum(
        ring[i][1] * ring[(i + 1) % len(ring)][0] - ring[(i + 1) % len(ring)][1] * ring[i][0]
        for i in range(len(ring))
    )
    return abs(twice) / 2


def circle_corners(lat: float, lon: float, radius_m: float, corners: int = 64) -> list[LatLon]:
    """A polygon that holds the circle: its corners a little beyond the radius, so that its
    edges touch the circle rather than cut it (for asking whether a circle stays inside)."""
    reach = radius_m / math.cos(math.pi / corners)
    return [destination(lat, lon, 360.0 * k / corners, reach) for k in range(corners)]


def polygon_inside(inner: list[LatLon], outer: Polygon) -> bool:
    """Whether the polygon `inner` lies inside `outer` (touching its edges is inside): every
    corner inside, and no edge of one properly crossing an edge of the other."""
    if not all(outer.contains(lat, lon) for lat, lon in inner):
        return False
    ring = inner[:-1] if len(inner) > 1 and inner[0] == inner[-1] else inner
    mine = [(ring[i], ring[(i + 1) % len(ring)]) for i in range(len(ring))]
    for a, b in mine:
        for c, d in outer.edges:
            if _turn(a, b, c) * _turn(a, b, d) < 0 and _turn(c, d, a) * _turn(c, d, b) < 0:
                return False
    return True


def _turn(a: LatLon, b: LatLon, c: LatLon) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
