"""Receive windows per weekday: the syntax, the right weekdays across midnight and DST
(Europe/Amsterdam), and targeting with them."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.storage.models import Channel
from gateway.targeting import Registration, select_recipients
from gateway.targeting import windows as w

AMS = ZoneInfo("Europe/Amsterdam")
UTRECHT = (52.0907, 5.1214)
ALL = (Channel.sms, Channel.voice)


def local(y, m, d, hh, mm=0, fold=0):
    return datetime(y, m, d, hh, mm, tzinfo=AMS, fold=fold)


@pytest.mark.parametrize(
    "text,canonical",
    [
        ("mo-fr 08:00-17:30; sa,su 10:00-14:00", "mo-fr 08:00-17:30; sa,su 10:00-14:00"),
        ("22:00-07:00", "22:00-07:00"),
        ("MA-VR 9:00-17:00", "mo-fr 09:00-17:00"),  # Dutch, any case, one-digit hours
        ("fr-mo 10:00-24:00", "mo,fr-su 10:00-24:00"),  # a range round the week's end
        ("mo,tu,we 01:00-02:00", "mo-we 01:00-02:00"),
        ("mo-su 00:00-24:00", "00:00-24:00"),
        ("", None),
    ],
)
def test_the_syntax_and_its_canonical_form(text, canonical):
    assert w.format(w.parse(text)) == canonical
    if canonical:
        assert w.format(w.parse(canonical)) == canonical


@pytest.mark.parametrize(
    "text,says",
    [
        ("mo-fr", "not a window"),
        ("xx 08:00-09:00", "'xx' is not a day"),
        ("mo 25:00-26:00", "not a time of day"),
        ("mo 08:00-08:00", "starts when it ends"),
        ("mo 24:00-08:00", "not a time of day"),
        ("; ".join(["mo 08:00-09:00"] * 15), "at most 14"),
    ],
)
def test_bad_windows_say_what_is_wrong(text, says):
    with pytest.raises(ValueError, match=says):
        w.parse(text)


# 2026-11-27 is a Friday.
FRIDAY_NIGHT = "fr 22:00-02:00"


@pytest.mark.parametrize(
    "moment,open_",
    [
        (local(2026, 11, 27, 21, 59), False),
        (local(2026, 11, 27, 22, 0), True),
        (local(2026, 11, 28, 0, 0), True),  # Saturday, after midnight: still Friday's window
        (local(2026, 11, 28, 1, 59), True),
        (local(2026, 11, 28, 2, 0), False),
        (local(2026, 11, 28, 22, 30), False),  # Saturday night: no window starts on Saturday
        (local(2026, 11, 27, 1, 0), False),  # Friday early morning: Thursday has no window
    ],
)
def test_a_window_across_midnight_belongs_to_the_day_it_starts(moment, open_):
    assert w.open_at(FRIDAY_NIGHT, moment) is open_


def test_sunday_night_runs_into_monday():
    assert w.open_at("su 23:00-01:00", local(2026, 11, 30, 0, 30))  # Monday 00:30
    assert not w.open_at("su 23:00-01:00", local(2026, 11, 24, 0, 30))  # Tuesday 00:30


def test_weekday_windows_follow_the_local_clock_across_dst():
    # 29 March 2026: clocks go 02:00 → 03:00 on a Sunday. An office window on weekdays.
    office = "mo-fr 08:00-17:00"
    sunday_before = datetime(2026, 3, 29, 7, 30, tzinfo=UTC)  # 09:30 CEST, a Sunday
    monday = datetime(2026, 3, 30, 6, 30, tzinfo=UTC)  # 08:30 CEST
    friday_winter = datetime(2026, 3, 27, 6, 30, tzinfo=UTC)  # 07:30 CET: not yet
    assert not w.open_at(office, sunday_before.astimezone(AMS))
    assert w.open_at(office, monday.astimezone(AMS))
    assert not w.open_at(office, friday_winter.astimezone(AMS))
    # The night of the change: a Saturday-night window 22:00–04:00 covers 03:30 CEST on Sunday.
    assert w.open_at("sa 22:00-04:00", datetime(2026, 3, 29, 1, 30, tzinfo=UTC).astimezone(AMS))
    # 25 October 2026, clocks go 03:00 → 02:00: 02:30 comes twice, both inside a Sunday 02:00–03:00.
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC).astimezone(AMS)
    second = datetime(2026, 10, 25, 1, 30, tzinfo=UTC).astimezone(AMS)
    assert (first.hour, first.minute, second.hour, second.minute) == (2, 30, 2, 30)
    assert w.open_at("su 02:00-03:00", first) and w.open_at("su 02:00-03:00", second)
    assert not w.open_at("sa 02:00-03:00", first)


def test_next_open():
    assert w.next_open(None, local(2026, 11, 27, 12)) == local(2026, 11, 27, 12)
    assert w.next_open("mo-fr 08:00-17:00", local(2026, 11, 27, 12)) == local(2026, 11, 27, 12)
    # Friday 17:00: next Monday 08:00.
    assert w.next_open("mo-fr 08:00-17:00", local(2026, 11, 27, 17)) == local(2026, 11, 30, 8)
    assert w.next_open(FRIDAY_NIGHT, local(2026, 11, 28, 3)) == local(2026, 12, 4, 22)


def reg(aid, phone, windows, channel="sms"):
    return Registration(aid, aid, phone, channel, *UTRECHT, windows, None, None, False, "nl")


def test_targeting_uses_the_window_of_the_right_weekday():
    """Home in the evening and at weekends, work on weekdays: one number, the open address decides."""
    phone = "+31600000001"
    work = reg(1, phone, "mo-fr 08:00-17:30")
    home = reg(2, phone, "mo-fr 17:30-08:00; sa,su 00:00-24:00", channel="voice")
    tuesday_10 = local(2026, 11, 24, 10)
    tuesday_20 = local(2026, 11, 24, 20)
    saturday_10 = local(2026, 11, 28, 10)
    saturday_03 = local(2026, 11, 28, 3)  # Friday's 17:30–08:00 window, and Saturday's whole day
    for moment, channel in [
        (tuesday_10, Channel.sms),
        (tuesday_20, Channel.voice),
        (saturday_10, Channel.voice),
        (saturday_03, Channel.voice),
    ]:
        [r] = select_recipients([work, home], *UTRECHT, 1000, ALL, moment)
        assert r.channel == channel, moment
    assert not select_recipients([work], *UTRECHT, 1000, ALL, saturday_10)


def test_unreadable_stored_windows_count_as_always_and_are_logged(caplog):
    """Only a bug can store such text; a launch must not fail on it."""
    assert w.open_at("06:00-24:30", local(2026, 11, 27, 3))
    assert "unreadable receive windows '06:00-24:30'" in caplog.text
