"""The work queue on Redis Streams: per channel, one stream per flow, one consumer group of workers.

A flow is a bulletin's messages (gateway/queue/base.py): stream `f"{prefix}queue:{channel}:{flow}"`,
and the set `f"{prefix}queue:{channel}:flows"` names the flows that have a stream. Each entry
has one plain string field, `message_id`: one id, or for SMS up to `IDS_PER_ENTRY` ids separated
by commas. Acked entries are deleted (XACK + XDEL), so a stream's length is exactly its entries
not acked yet; a consumer that finds a flow's stream empty removes it (one Lua script, so that a
publish in between is never lost: a publish adds to the stream first, to the set after).
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import redis

from .base import (
    CHUNK,
    DEFAULT_CLAIM_IDLE_MS,
    DEFAULT_GROUP,
    DEFAULT_PREFIX,
    Delivery,
    Plan,
    channel_name,
    entry_id,
    oldest_first,
    split_entry_id,
)

T = TypeVar("T")
FIELD = "message_id"
# Ids per entry. An SMS worker takes hundreds at a time, so an entry carries 10 of them: a launch
# to 100,000 numbers is 10,000 XADDs instead of 100,000. Not more: an entry is delivered whole and
# a take is planned in entries, so at a 50/s bind 10 ids are a fifth of a second of one flow's
# sending. A voice worker takes only as many as it has free lines: one id per entry.
IDS_PER_ENTRY = {"sms": 10}
# While nothing waits, how often a blocked consume looks again (a new flow may appear any time).
POLL_S = 0.05

# KEYS: the flows set, the flow's stream; ARGV: the flow. Forget the flow if its stream is empty.
_FORGET_EMPTY = """
if redis.call('XLEN', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('SREM', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


def ensure_group(client: redis.Redis, key: str, group: str) -> None:
    """Create the stream `key` and its consumer group `group` unless they exist."""
    try:
        # From "0": entries already in a stream that lost its group are not skipped.
        client.xgroup_create(key, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if not str(exc).startswith("BUSYGROUP"):
            raise


def with_group(client: redis.Redis, key: str, group: str, call: Callable[[], T]) -> T:
    """Run `call`; if the stream or group is missing (never written, or Redis lost its data),
    create them and run it again."""
    try:
        return call()
    except redis.ResponseError as exc:
        if not str(exc).startswith("NOGROUP"):
            raise
    ensure_group(client, key, group)
    return call()


class RedisStreamQueue:
    """A `WorkQueue` on Redis Streams (redis-py, synchronous, safe to share between threads)."""

    def __init__(
        self,
        url: str,
        prefix: str = DEFAULT_PREFIX,
        group: str = DEFAULT_GROUP,
        claim_idle_ms: int = DEFAULT_CLAIM_IDLE_MS,
        ids_per_entry: Mapping[str, int] = IDS_PER_ENTRY,
    ) -> None:
        self.prefix = prefix
        self.ids_per_entry = ids_per_entry
        self.group = group
        self.claim_idle_ms = claim_idle_ms
        self.client = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=5)
        self._forget_empty = self.client.register_script(_FORGET_EMPTY)
        # Per-stream XAUTOCLAIM cursor, so that a long pending list is scanned over several calls.
        self._claim_cursor: dict[str, str] = {}

    def key(self, channel: str, flow: int) -> str:
        return f"{self.prefix}queue:{channel_name(channel)}:{int(flow)}"

    def flows_key(self, channel: str) -> str:
        return f"{self.prefix}queue:{channel_name(channel)}:flows"

    def _per_entry(self, channel: str) -> int:
        return self.ids_per_entry.get(channel_name(channel), 1)

    def publish(self, channel: str, message_ids: Sequence[int], flow: int = 0) -> None:
        if not message_ids:
            return
        key = self.key(channel, flow)
        ensure_group(self.client, key, self.group)
        per_entry = self._per_entry(channel)
        entries = [
            ",".join(str(int(i)) for i in message_ids[at : at + per_entry])
            for at in range(0, len(message_ids), per_entry)
        ]
        for start in range(0, len(entries), CHUNK):
            with self.client.pipeline(transaction=False) as pipe:
                for entry in entries[start : start + CHUNK]:
                    pipe.xadd(key, {FIELD: entry})
                pipe.execute()
        # After the entries: a consumer that sees the flow finds them (see _FORGET_EMPTY).
        self.client.sadd(self.flows_key(channel), int(flow))

    def waiting(self, channel: str) -> dict[int, int]:
        flows = sorted(int(f) for f in self.client.smembers(self.flows_key(channel)))
        with self.client.pipeline(transaction=False) as pipe:
            for flow in flows:
                pipe.xlen(self.key(channel, flow))
            lengths = pipe.execute()
        waiting = {}
        for flow, length in zip(flows, lengths):
            if length:
                waiting[flow] = int(length)
            else:
                self._forget_empty(keys=[self.flows_key(channel), self.key(channel, flow)], args=[flow])
                self._claim_cursor.pop(self.key(channel, flow), None)
        return waiting

    def consume(
        self, channel: str, consumer: str, count: int = 100, block_ms: int = 1000, plan: Plan = oldest_first
    ) -> list[Delivery]:
        if count <= 0:
            return []
        # `count` is in messages; Redis and the plan count entries.
        entries = max(1, math.ceil(count / self._per_entry(channel)))
        deadline = time.monotonic() + max(block_ms, 0) / 1000
        while True:
            waiting = self.waiting(channel)
            out = self._take(channel, consumer, plan(waiting, entries)) if waiting else []
            remaining = deadline - time.monotonic()
            if out or remaining <= 0:
                return out
            time.sleep(min(POLL_S, remaining))

    def _take(self, channel: str, consumer: str, order: list[int]) -> list[Delivery]:
        """The planned entries, handed out in the plan's order."""
        taken: dict[int, deque[list[Delivery]]] = {}
        broken: list[str] = []
        for flow, n in Counter(order).items():
            taken[flow] = deque(self._take_flow(channel, flow, consumer, n, broken))
        if broken:
            self.ack(channel, broken)
        out: list[Delivery] = []
        for flow in order:
            if taken[flow]:
                out += taken[flow].popleft()
        return out

    def _take_flow(
        self, channel: str, flow: int, consumer: str, n: int, broken: list[str]
    ) -> list[list[Delivery]]:
        key = self.key(channel, flow)
        # 1. Entries a dead (or stuck) consumer left unacked for longer than claim_idle_ms.
        cursor = self._claim_cursor.get(key, "0-0")
        claimed = with_group(
            self.client,
            key,
            self.group,
            lambda: self.client.xautoclaim(
                key, self.group, consumer, self.claim_idle_ms, start_id=cursor, count=n
            ),
        )
        self._claim_cursor[key] = claimed[0]
        found = list(claimed[1] or ())
        # 2. New entries.
        if len(found) < n:
            # RESP2, the protocol this client speaks, answers [[stream, entries], …] (RESP3 a dict).
            reply = cast(
                "list[list[Any]] | None",
                with_group(
                    self.client,
                    key,
                    self.group,
                    lambda: self.client.xreadgroup(self.group, consumer, {key: ">"}, count=n - len(found)),
                ),
            )
            for _stream, new in reply or ():
                found += new
        out: list[list[Delivery]] = []
        for redis_id, fields in found:
            ident = entry_id(flow, redis_id)
            try:
                out.append([Delivery(ident, int(i)) for i in fields[FIELD].split(",")])
            except (TypeError, KeyError, ValueError, AttributeError):
                broken.append(ident)  # deleted meanwhile (Redis < 7) or not ours
        return out

    def ack(self, channel: str, entry_ids: Sequence[str]) -> None:
        if not entry_ids:
            return
        by_flow: dict[int, list[str]] = {}
        for ident in dict.fromkeys(entry_ids):  # one per message of a shared entry
            flow, entry = split_entry_id(ident)
            by_flow.setdefault(flow, []).append(entry)
        for flow, entries in by_flow.items():
            key = self.key(channel, flow)
            for start in range(0, len(entries), CHUNK):
                chunk = entries[start : start + CHUNK]
                with self.client.pipeline(transaction=False) as pipe:
                    pipe.xack(key, self.group, *chunk)
                    pipe.xdel(key, *chunk)
                    pipe.execute()

    def pending(self, channel: str) -> int:
        total = 0
        for flow in self.waiting(channel):
            try:
                total += int(self.client.xpending(self.key(channel, flow), self.group)["pending"])
            except redis.ResponseError as exc:
                if not str(exc).startswith("NOGROUP"):
                    raise
        return total

    def backlog(self, channel: str) -> int:
        # Acked entries are deleted, so whatever is left is undelivered or pending.
        return sum(self.waiting(channel).values())

    def close(self) -> None:
        self.client.close()
