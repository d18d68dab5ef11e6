"""Flow control of one bind, as plain objects: the window, retry decisions, and the rate that
backs off when the SMSC throttles. Time is passed in (`now`, seconds), so tests need no clock."""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from dataclasses import dataclass, field

from aiosmpplib import SmppCommandStatus as Status


class Window:
    """At most `size` submits written and not yet answered (SMPP's window)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("window size must be at least 1")
        self.size = size
        self.in_flight = 0
        self._room = asyncio.Event()
        self._room.set()

    async def room(self) -> int:
        """Wait until at least one more submit may be written; returns how many may."""
        while self.in_flight >= self.size:
            self._room.clear()
            await self._room.wait()
        return self.size - self.in_flight

    def release(self, count: int = 1) -> None:
        self.in_flight = max(0, self.in_flight - count)
        if self.in_flight < self.size:
            self._room.set()

    def reset(self) -> None:
        """The connection is gone, and with it every outstanding submit."""
        self.release(self.in_flight)


class Verdict(enum.Enum):
    accepted = "accepted"
    throttled = "throttled"  # slow the bind down, send again (not counted as an attempt)
    transient = "transient"  # send again after a pause, a limited number of times
    rejected = "rejected"  # the message fails with the status as its reason


THROTTLING = frozenset({Status.ESME_RTHROTTLED, Status.ESME_RMSGQFUL})
TRANSIENT = frozenset(
    {
        Status.ESME_RSYSERR,
        Status.ESME_RSUBMITFAIL,
        Status.ESME_RX_T_APPN,
        Status.ESME_RINVBNDSTS,  # the SMSC lost our bind state: a reconnect fixes it
    }
)


def judge(status: int) -> Verdict:
    """What a submit_sm_resp (or generic_nack) status means for the message."""
    if status == Status.ESME_ROK:
        return Verdict.accepted
    if status in THROTTLING:
        return Verdict.throttled
    if status in TRANSIENT:
        return Verdict.transient
    return Verdict.rejected


def status_name(status: int) -> str:
    """ESME_RINVDSTADR for a known status, 0x…-hex for a vendor's own."""
    try:
        return Status(status).name
    except ValueError:
        return f"0x{status:08x}"


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with a ceiling: first, first×factor, … ≤ ceiling."""

    first: float = 0.5
    factor: float = 2.0
    ceiling: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt `attempt` (1 = the first retry)."""
        return min(self.ceiling, self.first * self.factor ** max(0, attempt - 1))


@dataclass
class AdaptiveRate:
    """The bind's own speed limit while the SMSC throttles: halved at each throttle (not more than
    once per `cooldown`), raised by `recovery` per second without one, until back at the
    contracted rate (or, for a bind without one, no limit).

    `limit()` is None when no limit applies; otherwise a local token bucket (`take`) keeps to it.
    """

    contracted: float = 0.0  # 0: none
    floor: float = 1.0
    recovery: float = 1.25
    cooldown: float = 1.0
    current: float | None = None
    _last_cut: float = -1e9
    _last_raise: float = 0.0
    _tokens: float = 0.0
    _refilled: float = 0.0
    # (time, count) of each round of sends in the last second, and their total (the "observed"
    # rate): one entry per round, not per message.
    _sent: deque[tuple[float, int]] = field(default_factory=deque)
    _sent_count: int = 0

    def limit(self) -> float | None:
        if self.current is None:
            return self.contracted or None
        return self.current

    def note_sent(self, now: float, count: int = 1) -> None:
        if self.current is None and not self.contracted:
            self._sent.append((now, count))
            self._sent_count += count
            cut = now - 1.0
            while self._sent[0][0] < cut:
                self._sent_count -= self._sent.popleft()[1]

    def throttled(self, now: float) -> bool:
        """The SMSC said ESME_RTHROTTLED / ESME_RMSGQFUL; returns whether the limit was cut now."""
        if now - self._last_cut < self.cooldown:
            return False
        base = (
            self.current
            if self.current is not None
            else (self.contracted or max(self._sent_count, self.floor * 2))
        )
        self.current = max(self.floor, base / 2)
        self._last_cut = self._last_raise = now
        self._tokens = 0.0
        self._refilled = now
        return True

    def tick(self, now: float) -> None:
        """Once in a while: recover by `recovery` per second since the last throttle or raise."""
        if self.current is None or now - self._last_cut < self.cooldown:
            return
        seconds = now - self._last_raise
        if seconds < 1.0:
            return
        self.current *= self.recovery ** int(seconds)
        self._last_raise = now
        ceiling = self.contracted or 100_000.0
        if self.current >= ceiling:
            self.current = None

    def take(self, now: float, wanted: int) -> tuple[int, float]:
        """(granted, wait): up to `wanted` sends allowed now; if none, how long to wait."""
        rate = self.current
        if rate is None:
            return wanted, 0.0
        self._tokens = min(max(rate / 10, 1.0), self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        granted = min(wanted, int(self._tokens))
        if granted:
            self._tokens -= granted
            return granted, 0.0
        return 0, (1.0 - self._tokens) / rate
