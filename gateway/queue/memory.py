"""In-process substitute for Redis Streams (embedded single-process mode, REDIS_URL unset).

Same semantics as `RedisStreamQueue`, flows and plans included, but the content lives in memory:
it dies with the process, which is why start-up runs `reconcile(..., republish_all=True)` with
this queue.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from .base import DEFAULT_CLAIM_IDLE_MS, Delivery, Plan, channel_name, entry_id, oldest_first, split_entry_id


@dataclass
class _Flow:
    # entry id -> message id, in publish order; not yet delivered.
    new: OrderedDict[str, int] = field(default_factory=OrderedDict)
    # entry id -> (message id, consumer, monotonic delivery time), oldest delivery first.
    delivered: OrderedDict[str, tuple[int, str, float]] = field(default_factory=OrderedDict)

    def __len__(self) -> int:
        return len(self.new) + len(self.delivered)


@dataclass
class _Channel:
    seq: int = 0
    flows: dict[int, _Flow] = field(default_factory=dict)


class MemoryQueue:
    """A thread-safe `WorkQueue` in memory; entry ids "<flow>/1-0", "<flow>/2-0", … increase per channel."""

    def __init__(self, claim_idle_ms: int = DEFAULT_CLAIM_IDLE_MS) -> None:
        self.claim_idle_ms = claim_idle_ms
        self._channels: dict[str, _Channel] = {}
        self._cond = threading.Condition()
        self._closed = False

    def _channel(self, channel: str) -> _Channel:
        return self._channels.setdefault(channel_name(channel), _Channel())

    def publish(self, channel: str, message_ids: Sequence[int], flow: int = 0) -> None:
        if not message_ids:
            return
        with self._cond:
            state = self._channel(channel)
            queue = state.flows.setdefault(int(flow), _Flow())
            for message_id in message_ids:
                state.seq += 1
                queue.new[entry_id(int(flow), f"{state.seq}-0")] = int(message_id)
            self._cond.notify_all()

    def waiting(self, channel: str) -> dict[int, int]:
        with self._cond:
            return self._waiting(self._channel(channel))

    @staticmethod
    def _waiting(state: _Channel) -> dict[int, int]:
        for flow in [f for f, queue in state.flows.items() if not queue]:
            del state.flows[flow]
        return {flow: len(queue) for flow, queue in sorted(state.flows.items())}

    def consume(
        self, channel: str, consumer: str, count: int = 100, block_ms: int = 1000, plan: Plan = oldest_first
    ) -> list[Delivery]:
        if count <= 0:
            return []
        deadline = time.monotonic() + max(block_ms, 0) / 1000
        idle_s = self.claim_idle_ms / 1000
        with self._cond:
            state = self._channel(channel)
            while True:
                now = time.monotonic()
                waiting = self._waiting(state)
                out = self._take(state, plan(waiting, count), consumer, now, idle_s) if waiting else []
                if out or self._closed:
                    return out
                remaining = deadline - now
                if remaining <= 0:
                    return []
                # Wake up for a publish, or when the oldest pending entry becomes claimable.
                for queue in state.flows.values():
                    if queue.delivered:
                        _, _, since = next(iter(queue.delivered.values()))
                        remaining = min(remaining, max(since + idle_s - now, 0.001))
                self._cond.wait(remaining)

    @classmethod
    def _take(
        cls, state: _Channel, order: list[int], consumer: str, now: float, idle_s: float
    ) -> list[Delivery]:
        taken = {
            flow: cls._take_flow(state.flows[flow], n, consumer, now, idle_s)
            for flow, n in Counter(order).items()
        }
        out: list[Delivery] = []
        for flow in order:
            if taken[flow]:
                out.append(taken[flow].pop(0))
        return out

    @staticmethod
    def _take_flow(queue: _Flow, n: int, consumer: str, now: float, idle_s: float) -> list[Delivery]:
        out: list[Delivery] = []
        # Reclaim entries left unacked too long (like XAUTOCLAIM); oldest delivery first.
        while queue.delivered and len(out) < n:
            ident, (message_id, _, since) = next(iter(queue.delivered.items()))
            if now - since < idle_s:
                break
            queue.delivered[ident] = (message_id, consumer, now)
            queue.delivered.move_to_end(ident)
            out.append(Delivery(ident, message_id))
        # Then new entries (like XREADGROUP '>').
        while queue.new and len(out) < n:
            ident, message_id = queue.new.popitem(last=False)
            queue.delivered[ident] = (message_id, consumer, now)
            out.append(Delivery(ident, message_id))
        return out

    def ack(self, channel: str, entry_ids: Sequence[str]) -> None:
        with self._cond:
            state = self._channel(channel)
            for ident in entry_ids:
                queue = state.flows.get(split_entry_id(ident)[0])
                if queue is not None:
                    # Like XACK + XDEL: gone whether it was delivered yet or not.
                    queue.delivered.pop(ident, None)
                    queue.new.pop(ident, None)

    def pending(self, channel: str) -> int:
        with self._cond:
            return sum(len(q.delivered) for q in self._channel(channel).flows.values())

    def backlog(self, channel: str) -> int:
        with self._cond:
            return sum(len(q) for q in self._channel(channel).flows.values())

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
