"""Targeting: who gets an action. Pure-function cases first, then the same rules through SQL."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.storage.models import Address, Channel, Municipality, Participant
from gateway.targeting import Registration, find_recipients, recipients_page, select_recipients
from gateway.targeting.geo import destination, distance_m, tile_of, tile_ranges
from gateway.targeting.select import is_paused
from gateway.targeting.windows import every_day, week_table

AMS = ZoneInfo("Europe/Amsterdam")
UTRECHT = (52.0907, 5.1214)
# A weekday afternoon in winter.
NOON = datetime(2026, 1, 14, 13, 0, tzinfo=UTC)
ALL = (Channel.sms, Channel.voice)


def reg(
    aid,
    phone="+31612345678",
    lat=UTRECHT[0],
    lon=UTRECHT[1],
    channel="sms",
    window=(None, None),
    pause=(None, None),
    unsubscribed=False,
    pid=None,
):
    windows = window if isinstance(window, str) else (None if window[0] is None else every_day(*window))
    return Registration(aid, pid or aid, phone, channel, lat, lon, windows, *pause, unsubscribed, "nl")


def phones(recipients):
    return sorted(r.phone for r in recipients)


# --- geometry --------------------------------------------------------------------------------------


@pytest.mark.parametrize("bearing", [0, 45, 90, 135, 180, 225, 270, 315])
def test_a_point_exactly_on_the_radius_is_inside_and_a_metre_further_is_not(bearing):
    on = destination(*UTRECHT, bearing, 2000)
    beyond = destination(*UTRECHT, bearing, 2001)
    assert distance_m(*UTRECHT, *on) == pytest.approx(2000, abs=1e-6)
    got = select_recipients(
        [reg(1, "+31600000001", *on), reg(2, "+31600000002", *beyond)], *UTRECHT, 2000, ALL, NOON
    )
    assert phones(got) == ["+31600000001"]


def test_the_tile_ranges_cover_every_point_of_the_circle():
    centre, radius = (51.4416, 5.4697), 5000
    covered = set()
    for lo, hi in tile_ranges(*centre, radius):
        covered.update(range(lo, hi + 1))
    for bearing in range(0, 360, 5):
        for d in (0, 1000, 2500, 4999, 5000):
            assert tile_of(*destination(*centre, bearing, d)) in covered


def test_tile_ranges_wrap_at_the_antimeridian():
    covered = set()
    for lo, hi in tile_ranges(0.0, 179.999, 5000):
        covered.update(range(lo, hi + 1))
    assert tile_of(0.0, -179.99) in covered and tile_of(0.0, 179.96) in covered


def test_a_circle_across_the_belgian_border_reaches_both_sides():
    # Baarle-Nassau / Baarle-Hertog: Dutch and Belgian addresses a few hundred metres apart.
    baarle = (51.4420, 4.9290)
    nl = reg(1, "+31611111111", 51.4500, 4.9300)
    be = reg(2, "+32470123456", 51.4300, 4.9250)
    far_be = reg(3, "+32470999999", 51.2194, 4.4025)  # Antwerp, 40 km
    assert phones(select_recipients([nl, be, far_be], *baarle, 3000, ALL, NOON)) == [
        "+31611111111",
        "+32470123456",
    ]


def test_a_circle_across_the_german_border_reaches_both_sides():
    kerkrade = (50.8660, 6.0700)
    nl = reg(1, "+31622222222", 50.8650, 6.0620)
    de = reg(2, "+4915112345678", 50.8700, 6.0950)  # Herzogenrath
    assert phones(select_recipients([nl, de], *kerkrade, 4000, ALL, NOON)) == [
        "+31622222222",
        "+4915112345678",
    ]


# --- windows, pause, unsubscribe ------------------------------------------------------------------


@pytest.mark.parametrize(
    "start,end,minute,inside",
    [
        (None, None, 0, True),
        (420, 1380, 419, False),  # 07:00–23:00
        (420, 1380, 420, True),
        (420, 1380, 1379, True),
        (420, 1380, 1380, False),  # the end is exclusive
        (1320, 420, 1319, False),  # 22:00–07:00 crosses midnight
        (1320, 420, 1320, True),
        (1320, 420, 0, True),
        (1320, 420, 419, True),
        (1320, 420, 420, False),
        (0, 1440, 1439, True),  # the whole day
    ],
)
def test_receive_windows(start, end, minute, inside):
    """An every-day window (the form every address had before weekdays), on a Wednesday."""
    wednesday = 2 * 1440
    assert start is None or week_table(every_day(start, end))[wednesday + minute] == inside


def local(y, m, d, hh, mm=0):
    return datetime(y, m, d, hh, mm, tzinfo=AMS)


def test_a_window_across_midnight_is_applied_in_local_time():
    night_shift = reg(1, window=(22 * 60, 7 * 60))
    assert select_recipients([night_shift], *UTRECHT, 1000, ALL, local(2026, 1, 14, 23, 30))
    assert select_recipients([night_shift], *UTRECHT, 1000, ALL, local(2026, 1, 15, 6, 59))
    assert not select_recipients([night_shift], *UTRECHT, 1000, ALL, local(2026, 1, 15, 7, 0))


def test_windows_follow_the_clock_across_the_dst_change():
    # Daytime window 08:00–22:00 local. 06:30 UTC is 07:30 in winter (outside) and 08:30 in
    # summer (inside): the same UTC instant of day gives different answers on either side of the
    # change on 29 March 2026 — the window follows the participant's clock, not UTC.
    day = reg(1, window=(8 * 60, 22 * 60))
    before = datetime(2026, 3, 28, 6, 30, tzinfo=UTC)
    after = datetime(2026, 3, 29, 6, 30, tzinfo=UTC)
    assert not select_recipients([day], *UTRECHT, 1000, ALL, before)
    assert select_recipients([day], *UTRECHT, 1000, ALL, after)
    # During the night of the change itself, 01:30 UTC is 03:30 CEST: inside a 03:00–04:00 window.
    assert select_recipients(
        [reg(2, window=(180, 240))], *UTRECHT, 1000, ALL, datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    )
    # And in autumn 01:30 UTC on 25 October is 02:30 CET (the repeated hour, second time round).
    assert select_recipients(
        [reg(3, window=(150, 160))], *UTRECHT, 1000, ALL, datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    "pause,today,paused",
    [
        ((date(2026, 7, 1), date(2026, 7, 21)), date(2026, 6, 30), False),
        ((date(2026, 7, 1), date(2026, 7, 21)), date(2026, 7, 1), True),
        ((date(2026, 7, 1), date(2026, 7, 21)), date(2026, 7, 21), True),  # both ends inclusive
        ((date(2026, 7, 1), date(2026, 7, 21)), date(2026, 7, 22), False),
        ((None, date(2026, 7, 21)), date(2026, 1, 1), True),
        ((date(2026, 7, 1), None), date(2030, 1, 1), True),
        ((None, None), date(2026, 7, 1), False),
    ],
)
def test_pause(pause, today, paused):
    assert is_paused(*pause, today) is paused


def test_paused_and_unsubscribed_participants_get_nothing():
    on_holiday = reg(1, "+31600000001", pause=(date(2026, 1, 10), date(2026, 1, 20)))
    back_home = reg(2, "+31600000002", pause=(date(2026, 1, 1), date(2026, 1, 13)))
    gone = reg(3, "+31600000003", unsubscribed=True)
    assert phones(select_recipients([on_holiday, back_home, gone], *UTRECHT, 1000, ALL, NOON)) == [
        "+31600000002"
    ]


def test_the_pause_uses_the_local_date():
    # 23:30 UTC on 13 January is already 14 January in Amsterdam: the pause has begun.
    starts_14th = reg(1, pause=(date(2026, 1, 14), date(2026, 1, 20)))
    assert not select_recipients(
        [starts_14th], *UTRECHT, 1000, ALL, datetime(2026, 1, 13, 23, 30, tzinfo=UTC)
    )


def test_only_the_actions_channels_are_used():
    sms, voice = reg(1, "+31600000001", channel="sms"), reg(2, "+31600000002", channel="voice")
    assert phones(select_recipients([sms, voice], *UTRECHT, 1000, [Channel.sms], NOON)) == ["+31600000001"]
    assert phones(select_recipients([sms, voice], *UTRECHT, 1000, [Channel.voice], NOON)) == ["+31600000002"]


# --- one message per number -----------------------------------------------------------------------


def test_one_number_at_three_addresses_with_conflicting_channels_gets_exactly_one_message():
    phone = "+31612345678"
    home = reg(1, phone, *destination(*UTRECHT, 0, 300), channel="voice", pid=1)
    work = reg(2, phone, *destination(*UTRECHT, 90, 900), channel="sms", pid=1)
    # The same number registered again by a household member, at another address.
    partner = reg(3, phone, *destination(*UTRECHT, 180, 1500), channel="sms", pid=2)
    got = select_recipients([work, partner, home], *UTRECHT, 2000, ALL, NOON)
    assert len(got) == 1
    # The nearest address decides the channel: home, by voice.
    assert (got[0].address_id, got[0].channel) == (1, Channel.voice)


def test_an_address_out_of_its_window_does_not_decide_the_channel():
    phone = "+31612345678"
    home = reg(1, phone, *destination(*UTRECHT, 0, 300), channel="voice", window=(8 * 60, 9 * 60))
    work = reg(2, phone, *destination(*UTRECHT, 90, 900), channel="sms")
    [only] = select_recipients([home, work], *UTRECHT, 2000, ALL, NOON)
    assert (only.address_id, only.channel) == (2, Channel.sms)


def test_at_equal_distance_sms_wins():
    phone = "+31612345678"
    got = select_recipients(
        [reg(1, phone, channel="voice"), reg(2, phone, channel="sms")], *UTRECHT, 100, ALL, NOON
    )
    assert [(r.address_id, r.channel) for r in got] == [(2, Channel.sms)]


# --- the same through the database (PostgreSQL and SQLite) ------------------------------------------


def _register(session, municipality, phone, points, channel="sms", **participant):
    p = Participant(municipality_id=municipality.id, name="P", phone=phone, **participant)
    p.addresses = [
        Address(
            postcode="3511 AB",
            house_number=str(i + 1),
            lat=lat,
            lon=lon,
            tile=tile_of(lat, lon),
            channel=channel,
        )
        for i, (lat, lon) in enumerate(points)
    ]
    session.add(p)
    return p


def test_find_recipients_in_the_database(sessions):
    with sessions() as s:
        m = Municipality(cbs_code="GM0344", name="Utrecht", region="Midden-Nederland")
        s.add(m)
        s.flush()
        on_edge = destination(*UTRECHT, 37, 5000)
        _register(s, m, "+31600000001", [on_edge])
        _register(s, m, "+31600000002", [destination(*UTRECHT, 37, 5002)])
        _register(s, m, "+31600000003", [destination(*UTRECHT, 200, 100), destination(*UTRECHT, 20, 4000)])
        _register(s, m, "+31600000003", [destination(*UTRECHT, 300, 2000)], channel="voice")
        _register(s, m, "+31600000004", [UTRECHT], unsubscribed_at=NOON)
        _register(s, m, "+31600000005", [UTRECHT], pause_from=date(2026, 1, 1), pause_until=date(2026, 1, 31))
        _register(s, m, "+31600000006", [(52.3676, 4.9041)])  # Amsterdam
        s.commit()
        got = find_recipients(s, *UTRECHT, 5000, ALL, NOON)
        paged = {size: every_page(s, *UTRECHT, 5000, size) for size in (1, 2, 3, 4, 100)}
    assert phones(got) == ["+31600000001", "+31600000003"]
    assert {r.phone: r.channel for r in got}["+31600000003"] == Channel.sms
    # A launch's pages: the same recipients, each number's registrations read together (the
    # three of +31600000003 in pages of 1 and 2 too).
    by_phone = sorted(got, key=lambda r: r.phone)
    assert all(sorted(pages, key=lambda r: r.phone) == by_phone for pages in paged.values()), paged


def every_page(db, lat, lon, radius_m, size):
    """The recipients of `recipients_page` from the first page to the last, as a launch's fan-out reads them."""
    got, after = [], None
    while True:
        page = recipients_page(db, lat, lon, radius_m, ALL, NOON, after=after, size=size)
        got.extend(page.recipients)
        if page.last_phone is None:
            return got
        assert all(r.phone <= page.last_phone for r in page.recipients)
        after = page.last_phone
