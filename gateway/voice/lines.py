"""The trunk's simultaneous calls (VOICE_MAX_CALLS): lines, handed out by the voice worker's loop.

A line is a **lease**: taken for one call, held until its channel hung up, given back. Where the
leases are counted is a `LinePool`:
- `LocalPool`: in this process (the embedded default, without Redis);
- `RedisPool`: shared by every voice worker process on the same trunk. One sorted set holds the
  leases, each scored with the moment it lapses (Redis's own clock, so the workers' clocks do not
  matter). A take is one Lua script — drop the lapsed leases, count, add as many as the cap
  leaves — so two workers never both take the last line. A worker renews the leases of its calls
  every quarter lease (VOICE_LEASE_SECONDS); a dead worker's leases lapse and its lines come back.
  Turns: a worker learns at once that one of its own calls ended, another only at its next look,
  so the first would take every line it frees. A worker that got no line is therefore remembered
  as waiting (`waits_ms`, renewed at each look), and nobody else takes a line until it had one:
  each worker with work gets lines, at the price of a line idle until the waiter's next look.

Not a semaphore: a semaphore serves its waiters first come, first served, so a retry of one
action's busy numbers would take the next free line before another action's first call. Here a
call only starts when the worker's loop gives it a line: a new message when it is taken from the
queue, a retry when the scheduler picks its flow among everything waiting (gateway/queue/schedule.py).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter, deque
from typing import Protocol

import redis
import redis.asyncio

from gateway import metrics
from gateway.errors import brief

log = logging.getLogger(__name__)


class LinePool(Protocol):
    """Where the lines in use are counted."""

    async def take(self, leases: list[str], cap: int) -> int:
        """Hold as many of `leases` (the first ones) as leave at most `cap` in use; how many."""

    async def release(self, leases: list[str]) -> None:
        """These calls ended: their lines are free."""

    async def renew(self, leases: list[str]) -> None:
        """These calls go on: their leases start again (also one that had lapsed)."""

    async def in_use(self) -> int:
        """Lines held now, by every worker counted here."""

    async def close(self) -> None: ...


class LocalPool:
    """The lines of this process only."""

    def __init__(self) -> None:
        self._held: set[str] = set()

    async def take(self, leases: list[str], cap: int) -> int:
        count = max(0, min(len(leases), cap - len(self._held)))
        self._held.update(leases[:count])
        return count

    async def release(self, leases: list[str]) -> None:
        self._held.difference_update(leases)

    async def renew(self, leases: list[str]) -> None:
        self._held.update(leases)

    async def in_use(self) -> int:
        return len(self._held)

    async def close(self) -> None:
        pass


# KEYS[1]: the sorted set (lease → when it lapses, ms), KEYS[2]: the worker waiting for a line;
# ARGV: cap, lease ms, this worker, how long a wait is remembered (ms), the leases wanted.
_TAKE = """
local waiter = redis.call('GET', KEYS[2])
if waiter and waiter ~= ARGV[3] then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local free = tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[1])
local taken = 0
for i = 5, #ARGV do
  if taken >= free then break end
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[i])
  taken = taken + 1
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
if taken == 0 then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', tonumber(ARGV[4]))
elseif waiter then
  redis.call('DEL', KEYS[2])
end
return taken
"""
# KEYS[1]: the sorted set; ARGV: lease ms, the leases renewed. Re-added if lapsed: the call is up.
_RENEW = """
local t = redis.call('TIME')
local lapses = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], lapses, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return #ARGV - 1
"""
# KEYS[1]: the sorted set. Lines in use now (lapsed leases not counted).
_IN_USE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""


class RedisPool:
    """The lines of every voice worker on one trunk, as leases in Redis."""

    def __init__(
        self, url: str, key: str, lease_seconds: float, owner: str = "", waits_ms: int = 3000
    ) -> None:
        self.key, self.lease_ms = key, max(1, round(lease_seconds * 1000))
        self.owner, self.waits_ms = owner or f"pool-{id(self):x}", waits_ms
        self.client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=5)
        self._take = self.client.register_script(_TAKE)
        self._renew = self.client.register_script(_RENEW)
        self._in_use = self.client.register_script(_IN_USE)

    async def take(self, leases: list[str], cap: int) -> int:
        if not leases:
            return 0
        args: list[str | int] = [cap, self.lease_ms, self.owner, self.waits_ms, *leases]
        return int(await self._take(keys=[self.key, f"{self.key}:waiting"], args=args))

    async def release(self, leases: list[str]) -> None:
        if not leases:
            return
        try:
            await self.client.zrem(self.key, *leases)
        except redis.RedisError as exc:  # they lapse by themselves
            log.warning(
                "voice lines: giving back %d line(s) failed (%s); they lapse", len(leases), brief(exc)
            )

    async def renew(self, leases: list[str]) -> None:
        if not leases:
            return
        try:
            await self._renew(keys=[self.key], args=[self.lease_ms, *leases])
        except redis.RedisError as exc:  # tried again at the next renewal, well within the lease
            log.warning("voice lines: renewing %d lease(s) failed (%s)", len(leases), brief(exc))

    async def in_use(self) -> int:
        return int(await self._in_use(keys=[self.key]))

    async def close(self) -> None:
        await self.client.aclose()


class Lines:
    """This worker's view of the lines: the leases it holds, and its retries waiting for one."""

    def __init__(self, pool: LinePool, cap: int, owner: str) -> None:
        if cap < 1:
            raise ValueError(f"at least one line, not {cap!r}")
        self.pool, self.cap, self.owner = pool, cap, owner
        self.held: set[str] = set()  # leases of this worker's calls
        self.changed = asyncio.Event()  # a line came free here or a retry began to wait
        self._ids = itertools.count(1)
        self._waiting: dict[int, deque[asyncio.Future[str]]] = {}  # flow → retries waiting for a line
        self._giving_back: set[asyncio.Task] = set()

    @property
    def busy(self) -> int:
        """Lines this worker holds."""
        return len(self.held)

    async def take(self, count: int) -> list[str]:
        """Up to `count` lines, as many as are free under the cap (across workers sharing the pool)."""
        wanted = [f"{self.owner}:{next(self._ids)}" for _ in range(min(count, self.cap))]
        taken = wanted[: await self.pool.take(wanted, self.cap)]
        self.held.update(taken)
        metrics.CALLS_HELD.labels("alert").set(self.busy)
        return taken

    async def release(self, leases: list[str]) -> None:
        """Give these lines back (their calls ended, or they were not used)."""
        mine = [lease for lease in leases if lease in self.held]
        self.held.difference_update(mine)
        metrics.CALLS_HELD.labels("alert").set(self.busy)
        await self.pool.release(mine)
        self.changed.set()

    async def renew(self) -> None:
        await self.pool.renew(sorted(self.held))

    async def wait(self, flow: int) -> str:
        """Until the loop gives this retry (of `flow`) a line; returns its lease, held."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(flow, deque()).append(future)
        self.changed.set()
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._give_back_later(future.result())  # given, but never used
            else:
                self._waiting[flow].remove(future)
            raise

    def waiting(self) -> Counter[int]:
        """Retries waiting for a line, per flow."""
        return Counter({flow: len(queue) for flow, queue in self._waiting.items() if queue})

    def give(self, flow: int, lease: str) -> None:
        """A held line to the longest-waiting retry of `flow`."""
        self._waiting[flow].popleft().set_result(lease)
        if not self._waiting[flow]:
            del self._waiting[flow]

    def _give_back_later(self, lease: str) -> None:
        task = asyncio.ensure_future(self.release([lease]))
        self._giving_back.add(task)
        task.add_done_callback(self._giving_back.discard)


class Line:
    """One message's hold on a line: given back once, however its calls end."""

    def __init__(self, lines: Lines, lease: str) -> None:
        self.lines = lines
        self.lease: str | None = lease  # the loop took it for this message

    async def release(self) -> None:
        lease, self.lease = self.lease, None
        if lease is not None:
            await self.lines.release([lease])

    async def wait(self, flow: int) -> None:
        """Held again once the loop gives one (see `Lines.wait`)."""
        self.lease = await self.lines.wait(flow)
