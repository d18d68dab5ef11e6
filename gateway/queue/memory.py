"""In-process substitute for Redis Streams (embedded single-process mode, REDIS_URL unset).

Same semantics as `RedisStreamQueue`, but the content lives in memory: it dies with the process,
which is why start-up runs `reconcile(..., republish_all=True)` with this queue.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from .base import DEFAULT_CLAIM_IDLE_MS, Delivery, channel_name


@dataclass
class _Stream:
    seq: int = 0
    # entry id -> message id, in publish order; not yet delivered.
    new: OrderedDict[str, int] = field(default_factory=OrderedDict)
    # entry id -> (message id, consumer, monotonic delivery time), oldest delivery first.
    delivered: OrderedDict[str, tuple[int, str, float]] = field(default_factory=OrderedDict)


class MemoryQueue:
    """A thread-safe `WorkQueue` in memory; entry ids "1-0", "2-0", … increase per channel."""

    def __init__(self, claim_idle_ms: int = DEFAULT_CLAIM_IDLE_MS) -> None:
        self.claim_idle_ms = claim_idle_ms
        self._streams: dict[str, _Stream] = {}
        self._cond = threading.Condition()
        self._closed = False

    def _stream(self, channel: str) -> _Stream:
        name = channel_name(channel)
        stream = self._streams.get(name)
        if stream is None:
            stream = self._streams[name] = _Stream()
        return stream

    def publish(self, channel: str, message_ids: Sequence[int]) -> None:
        if not message_ids:
            return
        with self._cond:
            stream = self._stream(channel)
            for message_id in message_ids:
                stream.seq += 1
                stream.new[f"{stream.seq}-0"] = int(message_id)
            self._cond.notify_all()

    def consume(
        self, channel: str, consumer: str, count: int = 100, block_ms: int = 1000
    ) -> list[Delivery]:
        if count <= 0:
            return []
        deadline = time.monotonic() + max(block_ms, 0) / 1000
        idle_s = self.claim_idle_ms / 1000
        with self._cond:
            stream = self._stream(channel)
            while True:
                now = time.monotonic()
                out = self._take(stream, consumer, count, now, idle_s)
                if out or self._closed:
                    return out
                remaining = deadline - now
                if remaining <= 0:
                    return []
                # Wake up for a publish, or when the oldest pending entry becomes claimable.
                if stream.delivered:
                    _, _, since = next(iter(stream.delivered.values()))
                    remaining = min(remaining, max(since + idle_s - now, 0.001))
                self._cond.wait(remaining)

    @staticmethod
    def _take(stream: _Stream, consumer: str, count: int, now: float, idle_s: float) -> list[Delivery]:
        out: list[Delivery] = []
        # Reclaim entries left unacked too long (like XAUTOCLAIM); oldest delivery first.
        while stream.delivered and len(out) < count:
            entry_id, (message_id, _, since) = next(iter(stream.delivered.items()))
            if now - since < idle_s:
                break
            stream.delivered[entry_id] = (message_id, consumer, now)
            stream.delivered.move_to_end(entry_id)
            out.append(Delivery(entry_id, message_id))
        # Then new entries (like XREADGROUP '>').
        while stream.new and len(out) < count:
            entry_id, message_id = stream.new.popitem(last=False)
            stream.delivered[entry_id] = (message_id, consumer, now)
            out.append(Delivery(entry_id, message_id))
        return out

    def ack(self, channel: str, entry_ids: Sequence[str]) -> None:
        with self._cond:
            stream = self._stream(channel)
            for entry_id in entry_ids:
                # Like XACK + XDEL: gone whether it was delivered yet or not.
                stream.delivered.pop(entry_id, None)
                stream.new.pop(entry_id, None)

    def pending(self, channel: str) -> int:
        with self._cond:
            return len(self._stream(channel).delivered)

    def backlog(self, channel: str) -> int:
        with self._cond:
            stream = self._stream(channel)
            return len(stream.new) + len(stream.delivered)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
