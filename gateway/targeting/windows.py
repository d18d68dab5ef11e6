"""Receive windows per weekday: when an address wants to be alerted, as one short line of text.

The syntax (API, CSV column `windows`, the database) is windows separated by `;`, each
`[DAYS ]HH:MM-HH:MM` in local time (Europe/Amsterdam):

    mo-fr 08:00-17:30; sa,su 10:00-14:00
    22:00-07:00                       (no days: every day)
    fr 22:00-02:00                    (crosses midnight: Friday night into Saturday)

Days are mo tu we th fr sa su (or Dutch: ma di wo do vr za zo), as a list (`sa,su`) and/or
ranges (`mo-fr`, `fr-mo` wraps round the week). A window that crosses midnight belongs to the
day it starts on. The end is exclusive; `24:00` ends at midnight. No text (NULL): always.

`open_at` answers from a table of the week's minutes, built once per distinct text (a city holds
a few hundred distinct texts), so that targeting pays one dict lookup and one index per address.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from functools import lru_cache
from typing import NamedTuple

log = logging.getLogger(__name__)
DAYS = ("mo", "tu", "we", "th", "fr", "sa", "su")  # datetime.weekday() order
_DUTCH = {"ma": "mo", "di": "tu", "wo": "we", "do": "th", "vr": "fr", "za": "sa", "zo": "su"}
EVERY_DAY = 0b1111111
WEEK_MINUTES = 7 * 1440
MAX_WINDOWS = 14
_WINDOW = re.compile(r"^(?:(?P<days>[a-z,\- ]+?)\s+)?(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})$")


class Window(NamedTuple):
    days: int  # bit 0 Monday … bit 6 Sunday
    start: int  # local minute of the day, 0..1439
    end: int  # exclusive, 0..1440; below start: crosses midnight


def _minute(text: str, *, end: bool) -> int:
    hours, minutes = (int(part) for part in text.split(":"))
    if end and (hours, minutes) == (24, 0):
        return 1440
    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
        raise ValueError(
            f"{text!r} is not a time of day (HH:MM, 00:00 to 23:59{', or 24:00' if end else ''})"
        )
    return hours * 60 + minutes


def _day(name: str) -> int:
    name = _DUTCH.get(name, name)
    if name not in DAYS:
        raise ValueError(f"{name!r} is not a day; use mo tu we th fr sa su (or ma di wo do vr za zo)")
    return DAYS.index(name)


def parse_days(text: str) -> int:
    """A day list like `mo-fr,su` as a bit mask."""
    mask = 0
    for part in text.replace(" ", "").split(","):
        if not part:
            raise ValueError(f"empty day in {text!r}")
        first, _, last = part.partition("-")
        a = _day(first)
        b = _day(last) if last else a
        for k in range((b - a) % 7 + 1):  # a range may wrap round the week (fr-mo)
            mask |= 1 << ((a + k) % 7)
    return mask


def parse(text: str | None) -> tuple[Window, ...]:
    """The windows a line of text describes (empty: always); ValueError says what is wrong."""
    if text is None or not text.strip():
        return ()
    windows = []
    for part in text.lower().split(";"):
        part = part.strip()
        match = _WINDOW.match(part)
        if not match:
            raise ValueError(f"{part!r} is not a window like 'mo-fr 08:00-17:30' or '22:00-07:00'")
        days = parse_days(match["days"]) if match["days"] else EVERY_DAY
        window = Window(days, _minute(match["start"], end=False), _minute(match["end"], end=True))
        if window.start == window.end:
            raise ValueError(f"{part!r} starts when it ends; leave the window out to receive always")
        windows.append(window)
    if len(windows) > MAX_WINDOWS:
        raise ValueError(f"at most {MAX_WINDOWS} windows per address")
    return tuple(windows)


def format_days(mask: int) -> str:
    """A bit mask as the shortest day list: runs of three or more days as ranges (mo-fr)."""
    runs: list[list[int]] = []
    for day in range(7):
        if mask >> day & 1:
            if runs and runs[-1][-1] == day - 1:
                runs[-1].append(day)
            else:
                runs.append([day])
    names = [
        f"{DAYS[run[0]]}-{DAYS[run[-1]]}" if len(run) >= 3 else ",".join(DAYS[d] for d in run) for run in runs
    ]
    return ",".join(names)


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def format(windows: tuple[Window, ...] | list[Window]) -> str | None:
    """The canonical text of windows (None: always), as stored."""
    if not windows:
        return None
    return "; ".join(
        (f"{format_days(w.days)} " if w.days != EVERY_DAY else "") + f"{_hhmm(w.start)}-{_hhmm(w.end)}"
        for w in windows
    )


def every_day(start: int, end: int) -> str:
    """One window every day: what an address's single window (the old form) becomes."""
    return format([Window(EVERY_DAY, start, end)]) or ""


@lru_cache(maxsize=4096)
def week_table(text: str) -> bytes:
    """For each minute of the week (Monday 00:00 first), 1 when a window is open.

    Text that does not parse (it is checked on every way in, so only a bug puts it there) counts
    as always open, with a warning: one bad address must not stop a launch for a missing child."""
    try:
        windows = parse(text)
    except ValueError as exc:
        log.warning("unreadable receive windows %r (%s): treated as always", text, exc)
        return bytes([1]) * WEEK_MINUTES
    table = bytearray(WEEK_MINUTES)
    for days, start, end in windows:
        length = (end - start) % 1440 or 1440
        for day in range(7):
            if days >> day & 1:
                first = day * 1440 + start
                for minute in range(first, first + length):
                    table[minute % WEEK_MINUTES] = 1  # Sunday night runs into Monday
    return bytes(table)


def week_minute(local: datetime) -> int:
    """The minute of the week of a local (Europe/Amsterdam) time: its wall clock, so across a DST
    change 02:30 is 02:30 whichever offset it has."""
    return local.weekday() * 1440 + local.hour * 60 + local.minute


def open_at(text: str | None, local: datetime) -> bool:
    return text is None or week_table(text)[week_minute(local)] == 1


def next_open(text: str | None, local: datetime) -> datetime | None:
    """The first local wall-clock minute from `local` on at which a window is open (`local`
    itself when open now), or None when none ever is. Whole minutes; the caller converts back
    to UTC (a minute skipped by DST resolves to the hour after)."""
    if text is None:
        return local
    table = week_table(text)
    now = week_minute(local)
    for ahead in range(WEEK_MINUTES):
        if table[(now + ahead) % WEEK_MINUTES]:
            if ahead == 0:
                return local
            base = local.replace(second=0, microsecond=0, tzinfo=None) + timedelta(minutes=ahead)
            return base.replace(tzinfo=local.tzinfo)
    return None
