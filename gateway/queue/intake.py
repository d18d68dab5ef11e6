"""A worker's side of the queue: entries taken, their ids claimed, the entries acked once the
claim is committed — the same three steps for every channel's worker."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from gateway.errors import brief

from .base import Delivery, Plan, WorkQueue, oldest_first

log = logging.getLogger(__name__)

T = TypeVar("T")


class Intake:
    """Takes ids from one channel's queue for one consumer and hands back what `claim` made of
    them. Synchronous (one thread hop for all three steps); not for two threads at once.

    Nothing is lost when a step fails: a claim that raised left its messages `queued` and its
    entries pending — kept here and claimed again first on the next take (left to the queue,
    they would come back only after its claim_idle_ms). An ack that failed after a committed
    claim is only logged: the entries come back, and claiming a `sending` message again gets
    nothing. A claim committed whose answer was lost is the lease's business (gateway.queue.lease:
    the worker renews only what it has in hand)."""

    def __init__(self, queue: WorkQueue, channel: str, consumer: str, plan: Plan = oldest_first) -> None:
        self.queue, self.channel, self.consumer, self.plan = queue, channel, consumer, plan
        self._unclaimed: list[Delivery] = []

    def take(
        self, count: int, block_ms: int, claim: Callable[[list[int]], list[T]], plan: Plan | None = None
    ) -> list[T]:
        """Up to about `count` messages from the flows `plan` picks, in its order, claimed by
        `claim(message_ids)`; waits up to `block_ms` when the queue is empty. Raises what
        `consume` or `claim` raised. `plan`: this take's own, instead of the intake's."""
        deliveries = self._first_unclaimed(count) or self.queue.consume(
            self.channel, self.consumer, count, block_ms, plan or self.plan
        )
        if not deliveries:
            return []
        try:
            claimed = claim([d.message_id for d in deliveries])
        except BaseException:
            self._unclaimed = deliveries + self._unclaimed
            raise
        try:
            self.queue.ack(self.channel, [d.entry_id for d in deliveries])
        except Exception as exc:
            log.warning(
                "%s: acknowledging %d queue entries failed (%s); they come back and are skipped",
                self.channel,
                len(deliveries),
                brief(exc),
            )
        return claimed

    def _first_unclaimed(self, count: int) -> list[Delivery]:
        """Up to `count` of the deliveries a failed claim left, in whole entries (an entry is acked
        whole, so its ids are claimed together) — not more than asked: the voice worker takes one
        per free line."""
        taken: list[Delivery] = []
        entries: set[str] = set()
        for delivery in self._unclaimed:
            if delivery.entry_id not in entries and len(taken) >= count:
                break
            entries.add(delivery.entry_id)
            taken.append(delivery)
        self._unclaimed = self._unclaimed[len(taken) :]
        return taken
