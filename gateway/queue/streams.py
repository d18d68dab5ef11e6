"""The work queue on Redis Streams: one stream per channel, one consumer group of workers.

Key `f"{prefix}queue:{channel}"`; each entry has one plain string field, `message_id`: one id, or
for SMS up to `IDS_PER_ENTRY` ids separated by commas. Acked entries are deleted (XACK + XDEL), so
the stream's length is exactly the entries not acked yet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import redis

from .base import CHUNK, DEFAULT_CLAIM_IDLE_MS, DEFAULT_GROUP, DEFAULT_PREFIX, Delivery, channel_name

T = TypeVar("T")
FIELD = "message_id"
# Ids per entry. An SMS worker takes hundreds at a time, so an entry carries 100 of them: a launch
# to 100,000 numbers is 1,000 XADDs instead of 100,000 (a second of CPU saved between the API,
# Redis and the worker). A voice worker takes only as many as it has free lines, and an entry is
# delivered whole, so voice entries carry one id each.
IDS_PER_ENTRY = {"sms": 100}


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
        # Per-channel XAUTOCLAIM cursor, so that a long pending list is scanned over several calls.
        self._claim_cursor: dict[str, str] = {}

    def key(self, channel: str) -> str:
        return f"{self.prefix}queue:{channel_name(channel)}"

    def _ensure_group(self, key: str) -> None:
        ensure_group(self.client, key, self.group)

    def _with_group(self, key: str, call: Callable[[], T]) -> T:
        return with_group(self.client, key, self.group, call)

    def publish(self, channel: str, message_ids: Sequence[int]) -> None:
        if not message_ids:
            return
        key = self.key(channel)
        self._ensure_group(key)
        per_entry = self.ids_per_entry.get(channel_name(channel), 1)
        entries = [",".join(str(int(i)) for i in message_ids[at : at + per_entry])
                   for at in range(0, len(message_ids), per_entry)]
        for start in range(0, len(entries), CHUNK):
            with self.client.pipeline(transaction=False) as pipe:
                for entry in entries[start : start + CHUNK]:
                    pipe.xadd(key, {FIELD: entry})
                pipe.execute()

    def consume(
        self, channel: str, consumer: str, count: int = 100, block_ms: int = 1000
    ) -> list[Delivery]:
        if count <= 0:
            return []
        key = self.key(channel)
        # `count` is in messages; Redis counts entries.
        count = max(1, count // self.ids_per_entry.get(channel_name(channel), 1))
        out: list[Delivery] = []
        broken: list[str] = []
        entries_seen = 0

        def add(entries) -> None:
            nonlocal entries_seen
            for entry_id, fields in entries or ():
                entries_seen += 1
                try:
                    out.extend([Delivery(entry_id, int(i)) for i in fields[FIELD].split(",")])
                except (TypeError, KeyError, ValueError, AttributeError):
                    broken.append(entry_id)  # deleted meanwhile (Redis < 7) or not ours

        # 1. Entries a dead (or stuck) consumer left unacked for longer than claim_idle_ms.
        cursor = self._claim_cursor.get(key, "0-0")
        claimed = self._with_group(
            key,
            lambda: self.client.xautoclaim(
                key, self.group, consumer, self.claim_idle_ms, start_id=cursor, count=count
            ),
        )
        self._claim_cursor[key] = claimed[0]
        add(claimed[1])
        # 2. New entries; only wait for them when there was nothing to reclaim.
        if entries_seen < count:
            block = block_ms if block_ms > 0 and not out else None
            reply = self._with_group(
                key,
                lambda: self.client.xreadgroup(
                    self.group, consumer, {key: ">"}, count=count - entries_seen, block=block
                ),
            )
            for _stream, entries in reply or ():
                add(entries)
        if broken:
            self.ack(channel, broken)
        return out

    def ack(self, channel: str, entry_ids: Sequence[str]) -> None:
        if not entry_ids:
            return
        key = self.key(channel)
        entry_ids = list(dict.fromkeys(entry_ids))  # one per message of a shared entry
        for start in range(0, len(entry_ids), CHUNK):
            chunk = entry_ids[start : start + CHUNK]
            with self.client.pipeline(transaction=False) as pipe:
                pipe.xack(key, self.group, *chunk)
                pipe.xdel(key, *chunk)
                pipe.execute()

    def pending(self, channel: str) -> int:
        try:
            return int(self.client.xpending(self.key(channel), self.group)["pending"])
        except redis.ResponseError as exc:
            if str(exc).startswith("NOGROUP"):
                return 0
            raise

    def backlog(self, channel: str) -> int:
        # Acked entries are deleted, so whatever is left is undelivered or pending.
        return int(self.client.xlen(self.key(channel)))

    def close(self) -> None:
        self.client.close()
