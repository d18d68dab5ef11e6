"""The work queue: message ids from the database to the channel workers ("sms", "voice").

Delivery guarantee: the queue is at-least-once — an entry stays pending until acked and is
re-delivered to another consumer once unacked for `claim_idle_ms`, so an id may arrive twice.
Sending is exactly-once through the database: a worker sends only the ids `claim()` returns,
i.e. rows it moved from `queued` to `sending` itself; a second claim of the same id gets nothing.
The database is the source of truth, the queue only a hint: `reconcile()` publishes again the
`queued` messages whose publish was lost (crash between commit and publish: their bulletin's
`published_at` — or, for a message queued again on its own, its `enqueued_at` — still NULL),
or every `queued` one when the queue's content itself was lost (in-memory queue, Redis reset).
On Redis an SMS entry carries up to 100 ids (streams.IDS_PER_ENTRY).
"""

from .base import DEFAULT_GROUP, DEFAULT_PREFIX, Delivery, WorkQueue
from .intake import Intake
from .lease import (
    REQUEUED_DISPATCHED_DETAIL,
    Requeued,
    claim,
    keep_up,
    mark_dispatched,
    renew,
    requeue_stale,
    upkeep,
    worker_id,
)
from .memory import MemoryQueue
from .publish import publish_messages
from .reconcile import reconcile
from .streams import RedisStreamQueue


def make_queue(redis_url: str, prefix: str = DEFAULT_PREFIX) -> WorkQueue:
    """Redis Streams when `redis_url` is set, else the in-process `MemoryQueue`."""
    if redis_url:
        return RedisStreamQueue(redis_url, prefix=prefix)
    return MemoryQueue()


__all__ = [
    "DEFAULT_GROUP",
    "DEFAULT_PREFIX",
    "REQUEUED_DISPATCHED_DETAIL",
    "Delivery",
    "Intake",
    "MemoryQueue",
    "RedisStreamQueue",
    "Requeued",
    "WorkQueue",
    "claim",
    "keep_up",
    "make_queue",
    "mark_dispatched",
    "publish_messages",
    "reconcile",
    "renew",
    "requeue_stale",
    "upkeep",
    "worker_id",
]
