"""Publishing: committed messages onto the queue, and the record that they are there.

The one way messages reach the queue: a launch's fan-out (gateway/actions/fanout.py), the
reconciler (reconcile.py) and a lease that ran out (lease.py) all publish through here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.storage.models import Bulletin, Message, utcnow

from .base import CHUNK, WorkQueue, channel_name


def chunks(ids: Sequence[int]):
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def publish_messages(
    sessions: sessionmaker[Session],
    queue: WorkQueue,
    message_ids_by_channel: Mapping[str, Sequence[int]],
    bulletin_id: int | None = None,
    *,
    last: bool = True,
) -> int:
    """Put committed messages on the queue and record that they are there; returns how many.

    With `bulletin_id` the ids are messages of that new bulletin (created with `enqueued_at`
    set): the record is one mark, `Bulletin.published_at`, after the last chunk — of the last
    publish of its fan-out (`last`; gateway/actions/fanout.py).
    Without, each message gets its own `enqueued_at` (a message queued again), and is published in
    its bulletin's flow. The only place that sets either. Publish first: a crash before the mark
    leaves it unset and the reconciler publishes again, which a duplicate entry survives.
    """
    # Chunk by chunk (publish, then mark and commit): a worker starts on the first chunk at once,
    # and each mark holds its rows' locks only briefly. One transaction over a whole launch
    # (100,000 rows) made the workers' claims and status writes wait on its row locks.
    published = 0
    for channel, ids in message_ids_by_channel.items():
        for chunk in chunks(list(ids)):
            if bulletin_id is not None:
                queue.publish(channel_name(channel), chunk, flow=bulletin_id)
                published += len(chunk)
                continue
            with sessions() as session, session.begin():
                for flow, flow_ids in _by_bulletin(session, chunk).items():
                    queue.publish(channel_name(channel), flow_ids, flow=flow)
                    published += len(flow_ids)
                session.execute(
                    update(Message)
                    .where(Message.id.in_(chunk))
                    .values(enqueued_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
    if bulletin_id is not None and last:
        mark_published(sessions, Bulletin.id == bulletin_id)
    return published


def _by_bulletin(session: Session, message_ids: Sequence[int]) -> dict[int, list[int]]:
    """The ids grouped by their bulletin (each bulletin is a flow of the queue), in the given order."""
    bulletin_of = dict(
        session.execute(select(Message.id, Message.bulletin_id).where(Message.id.in_(message_ids))).all()
    )
    grouped: dict[int, list[int]] = defaultdict(list)
    for message_id in message_ids:
        if message_id in bulletin_of:  # a message deleted meanwhile has nothing to send
            grouped[bulletin_of[message_id]].append(message_id)
    return grouped


def mark_published(sessions: sessionmaker[Session], which) -> None:
    with sessions() as session, session.begin():
        session.execute(
            update(Bulletin)
            .where(which, Bulletin.published_at.is_(None))
            .values(published_at=utcnow())
            .execution_options(synchronize_session=False)
        )
