"""The contracted rate of one SMPP bind, shared by every gateway process that uses the bind.

An operator contracts a number of messages per second per bind and answers ESME_RTHROTTLED (or
worse, cuts the bind) when it is exceeded. Several `worker sms` processes may send over the same
bind, so the count lives in Redis, and a Lua script does the bookkeeping atomically.

The script keeps two books:

* a log of grants (a sorted set scored by Redis time in microseconds, each entry carrying how
  many sends it granted) with a running total: the hard guarantee, at most `limit` sends in the
  last `window` (one second plus a small guard, below);
* a token bucket refilled at `limit / window` per second and holding at most two batches: it
  paces the sends through the second instead of letting a whole second's worth out in one burst
  at its start (a burst that, repeated a second later, would crowd the boundary). A caller that
  is refused sleeps until a whole batch has accrued, so 500/s goes out in grants of about 25:
  some 20 round trips per second, not 500. A caller that wakes late loses nothing: tokens keep
  accruing up to two batches.

All timestamps are Redis's own clock (`TIME` inside the script), so processes whose clocks
disagree still share one timeline; a caller only ever sleeps for a relative duration the script
computed. The guard makes the window slightly longer than a second, because a grant is stamped
when Redis makes it and the PDUs reach the SMSC a little later, by a delay that varies: the guard
absorbs that variation (default 10 ms, costing 1% of the rate).
"""

from __future__ import annotations

import asyncio
import math
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis.asyncio

# A batch is a twentieth of the window's sends.
SLICES = 20
GUARD_S = 0.010

# KEYS: log (zset), total (string), bucket (hash: tokens, at).
# ARGV: wanted, limit, window_us, batch, member.
# Returns {granted, wait_us, now_us}: granted > 0, or 0 with how long to wait before asking again.
_TAKE = """
local log, total_key, bucket = KEYS[1], KEYS[2], KEYS[3]
local wanted = tonumber(ARGV[1])
local limit, window, batch = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl = math.ceil(window / 1000) + 1000

local function size(member) return tonumber(string.match(member, ':(%d+)$')) end
-- Scores go to Redis as integer strings: Lua's default number format would round 16 digits.
local function score(us) return string.format('%d', us) end

-- The log: what was granted in the last window.
local used = tonumber(redis.call('GET', total_key) or '0')
local expired = redis.call('ZRANGEBYSCORE', log, '-inf', score(now - window))
if #expired > 0 then
  for _, m in ipairs(expired) do used = used - size(m) end
  redis.call('ZREMRANGEBYSCORE', log, '-inf', score(now - window))
end
if used < 0 or redis.call('ZCARD', log) == 0 then used = 0 end

-- The bucket: refilled at limit per window, holding two batches at most.
local refill = limit / window
local capacity = 2 * batch
local state = redis.call('HMGET', bucket, 'tokens', 'at')
local tokens = capacity
if state[1] then
  tokens = math.min(capacity, tonumber(state[1]) + (now - tonumber(state[2])) * refill)
end

local grant = math.min(wanted, limit - used, math.floor(tokens))
if grant > 0 then
  redis.call('ZADD', log, score(now), ARGV[5] .. ':' .. grant)
  redis.call('SET', total_key, used + grant, 'PX', ttl)
  redis.call('PEXPIRE', log, ttl)
  redis.call('HSET', bucket, 'tokens', tostring(tokens - grant), 'at', score(now))
  redis.call('PEXPIRE', bucket, ttl)
  return {grant, 0, now}
end
redis.call('SET', total_key, used, 'PX', ttl)
-- Refused: come back when a whole batch (or what is wanted, if less) has accrued and the
-- window has room again.
local wait = math.max(1000, (math.min(wanted, batch) - tokens) / refill)
if limit - used <= 0 then
  local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
  wait = math.max(wait, tonumber(oldest[2]) + window - now)
end
return {0, math.ceil(wait), now}
"""


@dataclass(frozen=True)
class Window:
    """How a rate becomes whole sends: at most `limit` per `window_s`, granted in `batch`es."""

    limit: int
    window_s: float
    batch: int


def window_for(rate_per_second: float, guard_s: float = GUARD_S) -> Window:
    """The window that enforces `rate_per_second` (> 0).

    RULE: never more than the contracted rate in any one-second window. A fractional rate is
    rounded down (200.5/s allows 200 in a second); a rate below 1/s becomes 1 per 1/rate seconds.
    """
    if not rate_per_second > 0:
        raise ValueError(f"rate must be positive, not {rate_per_second!r}")
    limit = max(1, math.floor(rate_per_second))
    window_s = max(1.0, limit / rate_per_second) + guard_s
    return Window(limit, window_s, math.ceil(limit / SLICES))


class BindRateLimit:
    """The send budget of one bind, shared through Redis by every process that uses the bind."""

    def __init__(self, redis: "redis.asyncio.Redis", bind: str, rate_per_second: float,
                 prefix: str = "burgernet:", guard_s: float = GUARD_S) -> None:
        if rate_per_second < 0:
            raise ValueError(f"rate must be 0 (unlimited) or positive, not {rate_per_second!r}")
        self.bind = bind
        self.rate = rate_per_second
        self._redis = redis
        self._keys = [f"{prefix}smpp-rate:{bind}:{part}" for part in ("log", "total", "bucket")]
        self._window = window_for(rate_per_second, guard_s) if rate_per_second else None
        self._script = redis.register_script(_TAKE) if rate_per_second else None
        # Unique grant entries across processes: a per-instance token plus a counter.
        self._token = secrets.token_hex(6)
        self._serial = 0
        self.last_grant_at: float | None = None  # Redis time (s) of the last grant, for tests/metrics

    @property
    def unlimited(self) -> bool:
        return self._window is None

    async def take(self, wanted: int) -> int:
        """Wait until at least one send is allowed; return how many (1..wanted) may go now.

        The caller sends them right away: the budget is spent when granted, and a send held back
        for long after its grant could land in a later second than the one it was counted in.
        """
        if wanted < 1:
            raise ValueError(f"wanted must be at least 1, not {wanted!r}")
        if self._window is None:
            return wanted
        w = self._window
        while True:
            self._serial += 1
            granted, wait_us, now_us = await self._script(
                keys=self._keys,
                args=[wanted, w.limit, round(w.window_s * 1e6), w.batch, f"{self._token}.{self._serial}"],
            )
            if granted:
                self.last_grant_at = int(now_us) / 1e6
                return int(granted)
            await asyncio.sleep(int(wait_us) / 1e6)
