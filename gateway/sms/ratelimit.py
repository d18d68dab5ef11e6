"""The contracted rate of one SMPP bind, shared by every gateway process that uses the bind.

An operator contracts a number of messages per second per bind and answers ESME_RTHROTTLED (or
worse, cuts the bind) when it is exceeded. Several `worker sms` processes may send over the same
bind, so the bookkeeping lives in Redis, done atomically by one Lua script.

Sends are granted in batches (a twentieth of the rate: 500/s goes out as 25 at a time, some 20
round trips a second, not 500), each batch at a **slot**: a moment on Redis's clock reserved for
it. Slots follow each other by exactly the batch's share of the window, whichever process asks,
so the sends are paced evenly through the second. A caller gets its slot when it asks a little
ahead (at most `lead` before the slot), sleeps until it and sends. Because a slot is reserved, not
taken when the caller happens to arrive, the caller's own lateness never shifts the slots after
it: the rate does not drift below the contract under load.

A log of the slots (a sorted set scored in microseconds, each entry carrying its batch size) is
the hard guarantee: a slot is only given when at most `limit` sends fall in the window that ends
at it. Slots are handed out in increasing order, so that window is the only one a new slot can
overfill.

All times are Redis's (`TIME` inside the script), so processes whose clocks disagree share one
timeline; a caller only ever sleeps for a relative duration the script computed, from the reply
(so it never writes before its slot). The window is one second plus a guard (default 10 ms,
costing 1% of the rate), because PDUs reach the SMSC a little after their slot, by a delay that
varies: the guard absorbs the ordinary variation, and what goes beyond it is measured (below).

A batch that reaches the SMSC later than the guard allows — a busy CPU woke the sender after
its slot, or the SMSC read it late — lands next to the batch a second later, which was counted
against the slot: the SMSC then sees more than the rate in one sliding second (measured: 514–550
at 500/s). So the caller reports when a batch went (`written`) and, once the SMSC answered its
last PDU, when the SMSC accepted it at the latest (`accepted`); the next take first moves the
batch's log entry by what exceeds the guard, and every slot reserved after it keeps a full window
from it. (Slots are reserved at most `lead` ahead, and answers come within milliseconds, so the
move is in time.) Why that is enough: every batch is accepted between its slot and its entry plus
the guard, so the sends in any one second of the SMSC's have their entries within one window.
Moving by the whole lateness would spend the guard twice (bench.contention at 500/s: a slot
every 51.2 ms on average instead of 50.5). A smaller guard buys nothing: a 5 ms one moved more
batches by as much (the same total, 1.021, in one run each).
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis.asyncio

    from .sending import RateLimit

# A batch is a twentieth of the window's sends.
SLICES = 20
GUARD_S = 0.010
# How far ahead of its slot a caller may reserve it, in batches: room for a few processes to
# hold the next slots at once.
LEAD_BATCHES = 4

# KEYS: log (zset of "<member>:<size>" scored by slot, µs), next (the earliest next slot, µs).
# ARGV: wanted, limit, window_us, batch, member, lead_us, then for each of the caller's batches
# that reached the SMSC late: its log member and when it did (µs).
# Returns {granted, wait_us, slot_us}: granted > 0 with how long to sleep until the slot, or 0
# with how long to wait before asking again.
_TAKE = """
local log, next_key = KEYS[1], KEYS[2]
local wanted = tonumber(ARGV[1])
local limit, window, batch = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local member, lead = ARGV[5], tonumber(ARGV[6])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local function size(m) return tonumber(string.match(m, ':(%d+)$')) end
-- Scores go to Redis as integer strings: Lua's default number format would round 16 digits.
local function score(us) return string.format('%d', us) end

for i = 7, #ARGV - 1, 2 do
  redis.call('ZADD', log, 'XX', 'GT', score(tonumber(ARGV[i + 1])), ARGV[i])
end

redis.call('ZREMRANGEBYSCORE', log, '-inf', score(now - window))
local k = math.min(wanted, batch)
local slot = math.max(now, tonumber(redis.call('GET', next_key) or '0'))

-- Every entry lies before the slot: the window ending at the slot holds the entries after
-- slot - window. While they and this batch exceed the limit, move the slot to when the oldest
-- of them leaves the window.
local live = redis.call('ZRANGEBYSCORE', log, '(' .. score(slot - window), '+inf', 'WITHSCORES')
local used = 0
for i = 1, #live, 2 do used = used + size(live[i]) end
local i = 1
while used + k > limit and i < #live do
  used = used - size(live[i])
  slot = math.max(slot, tonumber(live[i + 1]) + window)
  i = i + 2
end

if slot - now > lead then
  return {0, slot - now - lead, slot}
end
local ttl = math.ceil((window + lead) / 1000) + 1000
redis.call('ZADD', log, score(slot), member .. ':' .. k)
redis.call('PEXPIRE', log, ttl)
redis.call('SET', next_key, score(slot + math.ceil(k * window / limit)), 'PX', ttl)
return {k, slot - now, slot}
"""


@dataclass(frozen=True)
class Grant:
    """A batch's place in the log: its member, its slot (Redis µs) and when that is on our clock."""

    member: str
    slot_us: int
    due: float  # time.monotonic()


@dataclass(frozen=True)
class Window:
    """How a rate becomes whole sends: at most `limit` per `window_s`, granted in `batch`es."""

    limit: int
    window_s: float
    batch: int
    guard_s: float

    @property
    def lead_s(self) -> float:
        """How long before its slot a batch may be reserved."""
        return LEAD_BATCHES * self.batch * self.window_s / self.limit


def window_for(rate_per_second: float, guard_s: float = GUARD_S) -> Window:
    """The window that enforces `rate_per_second` (> 0).

    RULE: never more than the contracted rate in any one-second window. A fractional rate is
    rounded down (200.5/s allows 200 in a second); a rate below 1/s becomes 1 per 1/rate seconds.
    """
    if not rate_per_second > 0:
        raise ValueError(f"rate must be positive, not {rate_per_second!r}")
    limit = max(1, math.floor(rate_per_second))
    window_s = max(1.0, limit / rate_per_second) + guard_s
    return Window(limit, window_s, math.ceil(limit / SLICES), guard_s)


class BindRateLimit:
    """The send budget of one bind, shared through Redis by every process that uses the bind."""

    def __init__(
        self,
        redis: redis.asyncio.Redis,
        bind: str,
        rate_per_second: float,
        prefix: str = "burgernet:",
        guard_s: float = GUARD_S,
    ) -> None:
        if rate_per_second < 0:
            raise ValueError(f"rate must be 0 (unlimited) or positive, not {rate_per_second!r}")
        self.bind = bind
        self.rate = rate_per_second
        self._redis = redis
        self._keys = [f"{prefix}smpp-rate:{bind}:{part}" for part in ("log", "next")]
        self._window = window_for(rate_per_second, guard_s) if rate_per_second else None
        self._script = redis.register_script(_TAKE) if rate_per_second else None
        # Unique log entries across processes: a per-instance token plus a counter.
        self._token = secrets.token_hex(6)
        self._serial = 0
        self.last_grant_at: float | None = None  # Redis time (s) of the last grant's slot
        self._grant: Grant | None = None  # the last one, until it is written
        self._late: dict[str, int] = {}  # member → when its batch reached the SMSC (Redis µs), to tell Redis

    @property
    def unlimited(self) -> bool:
        return self._window is None

    def set_rate(self, rate_per_second: float, guard_s: float = GUARD_S) -> None:
        """Change this process's rate (e.g. backing off after ESME_RTHROTTLED); 0 is unlimited.

        The log and the next slot stay shared: a process at a lower rate spaces the slot after its
        own batches further apart, and the window check holds each process to its own limit.
        """
        if rate_per_second < 0:
            raise ValueError(f"rate must be 0 (unlimited) or positive, not {rate_per_second!r}")
        self.rate = rate_per_second
        self._window = window_for(rate_per_second, guard_s) if rate_per_second else None
        if rate_per_second and self._script is None:
            self._script = self._redis.register_script(_TAKE)

    async def take(self, wanted: int) -> int:
        """Wait until at least one send is allowed; return how many (1..wanted) may go now.

        The caller sends them right away: they were counted at their slot, and a send held back
        long after it could land in a later second than the one it was counted in.
        """
        if wanted < 1:
            raise ValueError(f"wanted must be at least 1, not {wanted!r}")
        if self._window is None or self._script is None:  # unlimited: the two go together
            return wanted
        w, script = self._window, self._script
        while True:
            self._serial += 1
            member = f"{self._token}.{self._serial}"
            # Before the call: Redis's `now` is no earlier, so the slot is not earlier than `due`
            # below, and a batch's lateness is never underestimated by the reply's own delay.
            asked = time.monotonic()
            # Taken before the call: answers read while it is under way add new ones.
            late, self._late = self._late, {}
            try:
                granted, wait_us, slot_us = await script(
                    keys=self._keys,
                    args=[
                        wanted,
                        w.limit,
                        round(w.window_s * 1e6),
                        w.batch,
                        member,
                        round(w.lead_s * 1e6),
                        *(item for pair in late.items() for item in pair),
                    ],
                )
            except BaseException:
                self._late = late | self._late  # told with the next take that gets through
                raise
            due = asked + max(0, int(wait_us)) / 1e6
            await asyncio.sleep(max(0, int(wait_us)) / 1e6)
            if granted:
                self.last_grant_at = int(slot_us) / 1e6
                self._grant = Grant(f"{member}:{int(granted)}", int(slot_us), due)
                return int(granted)

    def written(self, at: float) -> Grant | None:
        """The last granted batch was written at `at` (time.monotonic()); returns its grant, for
        `accepted` once the SMSC answered (see the module docstring)."""
        grant, self._grant = self._grant, None
        if grant is not None:
            self.accepted(grant, at)
        return grant

    def accepted(self, grant: Grant, at: float) -> None:
        """The SMSC accepted the batch by `at` (time.monotonic()) at the latest: if that is later
        after its slot than the guard absorbs, the next take moves the batch by the excess."""
        guard_s = self._window.guard_s if self._window is not None else 0.0
        beyond_us = round((at - grant.due - guard_s) * 1e6)
        if beyond_us > 0:
            self._late[grant.member] = max(self._late.get(grant.member, 0), grant.slot_us + beyond_us)


class SentBatches:
    """A bind's rate-limited batches on the wire, until the SMSC answered them: tells the rate
    limit when the SMSC accepted each batch at the latest (`RateLimit.accepted`).

    That is when the answer to the batch's last PDU arrived: the SMSC had accepted it by then.
    Nothing is taken off for the way back: what can be measured, a round trip, also holds the way
    in and the SMSC's reading, so taking the quickest recent one off (as this did before) can put
    the bound before the real accept, and the batch a second later within the same sliding second
    (a CI run of tests/test_concurrent_actions.py saw 202 at 200/s)."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._grants: dict[int, object] = {}

    def written(self, last: int | None, at: float) -> None:
        """A batch went (`last`: its last PDU's sequence; None when it held none)."""
        grant = self.limit.written(at)
        if grant is not None and last is not None:
            self._grants[last] = grant

    def answered(self, sequence: int, now: float) -> None:
        """The SMSC answered the PDU with `sequence` (any PDU: most are no batch's last)."""
        grant = self._grants.pop(sequence, None)
        if grant is not None:
            self.limit.accepted(grant, now)

    def trim(self, in_flight: int) -> None:
        """Forget every batch once more are kept than can still be answered (some expired)."""
        if len(self._grants) > in_flight:
            self.clear()

    def clear(self) -> None:
        self._grants.clear()
