"""Repairing lost publishes: what is `queued` in the database but no longer on the queue."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.storage.models import Bulletin, Channel, Message, MessageStatus, utcnow

from .base import CHUNK, WorkQueue, channel_name
from .publish import mark_published, publish_messages
from .settle import in_unsettled_bulletin, settle


def reconcile(
    sessions: sessionmaker[Session],
    queue: WorkQueue,
    grace_seconds: float,
    now: datetime | None = None,
    *,
    republish_all: bool = False,
) -> int:
    """Publish again the `queued` messages whose queue entry was lost; returns how many.

    Lost means, for a message older than `grace_seconds` (younger ones may still be on their way):
    - its publish never happened (a crash between commit and publish: its bulletin's
      `published_at`, or for a message queued again on its own its `enqueued_at`, is NULL), or
    - it was published but its channel's queue is now empty: workers ack an entry only after
      claiming its message in SQL, so a `queued` message with no entry left lost it (Redis
      restarted without persistence, or its stream was deleted).
    With `republish_all` every `queued` message is published (start-up with the in-memory queue).
    """
    cutoff = (now or utcnow()) - timedelta(seconds=grace_seconds)
    condition = (Message.status == MessageStatus.queued) & in_unsettled_bulletin()
    unpublished = Bulletin.published_at.is_(None) & (Bulletin.created_at < cutoff)
    if not republish_all:
        emptied = [c.value for c in Channel if queue.backlog(c.value) == 0]
        condition = condition & (
            (Message.enqueued_at.is_(None) & (Message.created_at < cutoff))
            | Message.bulletin_id.in_(select(Bulletin.id).where(unpublished))
            | (Message.channel.in_(emptied) & (Message.enqueued_at < cutoff))
        )
    total = 0
    last_id = 0
    while True:
        with sessions() as session:
            rows = session.execute(
                select(Message.id, Message.channel)
                .where(condition, Message.id > last_id)
                .order_by(Message.id)
                .limit(CHUNK)
            ).all()
        if not rows:
            break
        by_channel: dict[str, list[int]] = defaultdict(list)
        for message_id, channel in rows:
            by_channel[channel_name(channel)].append(message_id)
        total += publish_messages(sessions, queue, by_channel)
        last_id = rows[-1][0]
        if len(rows) < CHUNK:
            break
    # Every queued message of those bulletins is on the queue again (they may have none left).
    mark_published(sessions, unpublished)
    with sessions() as session, session.begin():
        settle(session)
    return total
