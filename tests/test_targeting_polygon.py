"""Targeting in a drawn polygon: the same rules as the circle, the polygon deciding who is inside.

Pure cases first (the NL–BE border, concave shapes, points on an edge), then the same through SQL
on both databases and through the API (create, preview, launch, validation)."""

import math
import random
from datetime import UTC, datetime

import pytest

from gateway.storage.models import Address, Channel, Municipality, Participant
from gateway.targeting import Registration, find_recipients, recipients_page, select_recipients
from gateway.targeting.geo import Polygon, crossing_edges, distance_m, tile_of

NOON = datetime(2026, 1, 14, 13, 0, tzinfo=UTC)
ALL = (Channel.sms, Channel.voice)


def reg(aid, phone, lat, lon, channel="sms", windows=None, unsubscribed=False):
    return Registration(aid, aid, phone, channel, lat, lon, windows, None, None, unsubscribed, "nl")


def in_polygon(corners, regs, channels=ALL, now=NOON):
    """select_recipients as the action calls it: the circle around the polygon, and the polygon."""
    shape = Polygon(corners)
    lat, lon = shape.centre()
    radius = shape.enclosing_radius_m(lat, lon)
    return sorted(r.phone for r in select_recipients(regs, lat, lon, radius, channels, now, corners))


# Baarle-Nassau (NL) and Baarle-Hertog (BE): enclaves within enclaves, the border runs between
# houses. A drawn quadrilateral over the village centre covers both countries.
BAARLE = [(51.4330, 4.9160), (51.4480, 4.9150), (51.4490, 4.9400), (51.4320, 4.9420)]


def test_a_polygon_across_the_belgian_border_reaches_both_sides_and_nothing_outside_it():
    nl = reg(1, "+31611111111", 51.4420, 4.9290)  # Baarle-Nassau, Singel
    be = reg(2, "+32470123456", 51.4380, 4.9270)  # Baarle-Hertog, Loveren
    be_enclave_edge = reg(3, "+32470222222", 51.4335, 4.9300)  # just inside the southern edge
    outside_but_in_circle = reg(4, "+32470999999", 51.4300, 4.9300)  # 150 m south of the polygon
    antwerp = reg(5, "+32470333333", 51.2194, 4.4025)
    shape = Polygon(BAARLE)
    lat, lon = shape.centre()
    assert distance_m(lat, lon, 51.4300, 4.9300) < shape.enclosing_radius_m(lat, lon)  # a real test
    assert in_polygon(BAARLE, [nl, be, be_enclave_edge, outside_but_in_circle, antwerp]) == [
        "+31611111111",
        "+32470123456",
        "+32470222222",
    ]


# A U (a horseshoe along two streets with a park between): concave, its notch is outside.
U_SHAPE = [
    (52.080, 5.100),
    (52.100, 5.100),
    (52.100, 5.110),
    (52.085, 5.110),  # the notch's floor
    (52.085, 5.130),
    (52.100, 5.130),
    (52.100, 5.140),
    (52.080, 5.140),
]


def test_a_concave_polygon_leaves_out_its_notch():
    west_arm = reg(1, "+31600000001", 52.095, 5.105)
    east_arm = reg(2, "+31600000002", 52.095, 5.135)
    base = reg(3, "+31600000003", 52.082, 5.120)
    in_the_notch = reg(4, "+31600000004", 52.095, 5.120)  # the park: inside the bounding box, not the U
    below = reg(5, "+31600000005", 52.079, 5.120)
    assert in_polygon(U_SHAPE, [west_arm, east_arm, base, in_the_notch, below]) == [
        "+31600000001",
        "+31600000002",
        "+31600000003",
    ]


def test_a_point_on_an_edge_or_a_corner_is_inside_and_a_hair_beyond_is_not():
    shape = Polygon(U_SHAPE)
    on = [
        (52.090, 5.100),  # on the western (north–south) edge
        (52.100, 5.105),  # on the northern (east–west) edge of the west arm
        (52.085, 5.120),  # on the notch's floor, an east–west edge inside the bounding box
        (52.100, 5.130),  # a corner
        (52.080, 5.140),  # the corner where the ring closes
    ]
    for lat, lon in on:
        assert shape.contains(lat, lon), (lat, lon)
    beyond = [(52.090, 5.100 - 1e-7), (52.1 + 1e-7, 5.105), (52.085 + 1e-7, 5.120), (52.0799999, 5.14)]
    for lat, lon in beyond:
        assert not shape.contains(lat, lon), (lat, lon)
    # A slanted edge: its midpoint is on it, and a tenth of a metre off it is outside.
    triangle = Polygon([(52.0, 5.0), (52.1, 5.2), (52.0, 5.2)])
    assert triangle.contains(52.05, 5.1)
    assert not triangle.contains(52.05 + 1e-6, 5.1)


def _reference_contains(corners, lat, lon):
    """Plain even–odd ray casting over every edge, for comparison (points on edges left out)."""
    inside = False
    for i, (alat, alon) in enumerate(corners):
        blat, blon = corners[(i + 1) % len(corners)]
        if (alat > lat) != (blat > lat) and lon < alon + (lat - alat) * (blon - alon) / (blat - alat):
            inside = not inside
    return inside


def _star(rng, centre, corners):
    """A random star-shaped (often concave) polygon: corners at random distances round the centre."""
    lat0, lon0 = centre
    return [
        (
            lat0 + rng.uniform(0.005, 0.03) * math.sin(2 * math.pi * k / corners),
            lon0 + rng.uniform(0.008, 0.05) * math.cos(2 * math.pi * k / corners),
        )
        for k in range(corners)
    ]


@pytest.mark.parametrize("seed", range(5))
def test_the_edge_index_decides_as_a_plain_ray_cast_and_the_tiles_cover_the_inside(seed):
    rng = random.Random(seed)
    corners = _star(rng, (52.09, 5.12), rng.randint(3, 60))
    shape = Polygon(corners)
    covered = set()
    for lo, hi in shape.tile_ranges():
        covered.update(range(lo, hi + 1))
    inside = 0
    for _ in range(3000):
        lat, lon = rng.uniform(52.05, 52.13), rng.uniform(5.06, 5.18)
        expected = _reference_contains(corners, lat, lon)
        assert shape.contains(lat, lon) == expected, (lat, lon)
        if expected:
            inside += 1
            assert tile_of(lat, lon) in covered
    assert inside > 100
    for lat, lon in corners:  # the corners themselves lie on the edges
        assert shape.contains(lat, lon) and tile_of(lat, lon) in covered


def test_the_circles_rules_hold_in_a_polygon():
    """One message per number (the address nearest the centre), windows, unsubscribed, channels."""
    home = reg(1, "+31600000001", 52.095, 5.105, channel="voice")
    work = reg(2, "+31600000001", 52.082, 5.120)  # the same number, nearer the centre
    night_only = reg(3, "+31600000003", 52.095, 5.135, windows="22:00-07:00")
    gone = reg(4, "+31600000004", 52.095, 5.135, unsubscribed=True)
    voice = reg(5, "+31600000005", 52.095, 5.135, channel="voice")
    regs = [home, work, night_only, gone, voice]
    assert in_polygon(U_SHAPE, regs) == ["+31600000001", "+31600000005"]
    assert in_polygon(U_SHAPE, regs, channels=[Channel.sms]) == ["+31600000001"]
    shape = Polygon(U_SHAPE)
    lat, lon = shape.centre()
    [picked] = [
        r
        for r in select_recipients(regs, lat, lon, shape.enclosing_radius_m(lat, lon), ALL, NOON, U_SHAPE)
        if r.phone == "+31600000001"
    ]
    assert picked.address_id == 2 and picked.channel == Channel.sms


def test_crossing_edges_are_found():
    bow_tie = [(52.0, 5.0), (52.1, 5.1), (52.1, 5.0), (52.0, 5.1)]
    assert crossing_edges(bow_tie) == (0, 2)
    assert crossing_edges(U_SHAPE) is None and crossing_edges(BAARLE) is None


# --- through the database ----------------------------------------------------------------------------


def test_find_recipients_in_a_polygon_in_the_database(sessions):
    with sessions() as s:
        m = Municipality(cbs_code="GM0784", name="Baarle-Nassau", region="Zeeland-West-Brabant")
        s.add(m)
        s.flush()
        for phone, (lat, lon) in [
            ("+31611111111", (51.4420, 4.9290)),
            ("+32470123456", (51.4380, 4.9270)),
            ("+32470999999", (51.4300, 4.9300)),  # in the circle round the polygon, not in it
            ("+31622222222", (BAARLE[2][0], BAARLE[2][1])),  # on a corner
        ]:
            p = Participant(municipality_id=m.id, name="P", phone=phone)
            p.addresses = [
                Address(
                    postcode="5111 AA",
                    house_number="1",
                    lat=lat,
                    lon=lon,
                    tile=tile_of(lat, lon),
                    channel="sms",
                )
            ]
            s.add(p)
        s.commit()
        shape = Polygon(BAARLE)
        lat, lon = shape.centre()
        radius = shape.enclosing_radius_m(lat, lon)
        got = find_recipients(s, lat, lon, radius, ALL, NOON, BAARLE)
        first = recipients_page(s, lat, lon, radius, ALL, NOON, BAARLE, after=None, size=2)
        rest = recipients_page(s, lat, lon, radius, ALL, NOON, BAARLE, after=first.last_phone, size=100)
    assert sorted(r.phone for r in got) == ["+31611111111", "+31622222222", "+32470123456"]
    # A launch's pages (gateway.actions.lifecycle): the same recipients, the polygon applied to each.
    assert rest.last_phone is None
    assert sorted(first.recipients + rest.recipients, key=lambda r: r.phone) == sorted(
        got, key=lambda r: r.phone
    )
