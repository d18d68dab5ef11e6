"""Between the database and the queue: publishing, repairing lost publishes, claiming."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import String, select, type_coerce, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.storage.models import Bulletin, Channel, Message, MessageStatus, utcnow

from .base import CHUNK, WorkQueue, channel_name
from .settle import in_unsettled_bulletin, settle


def _chunks(ids: Sequence[int]):
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
        for chunk in _chunks(list(ids)):
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
        _mark_published(sessions, Bulletin.id == bulletin_id)
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


def _mark_published(sessions: sessionmaker[Session], which) -> None:
    with sessions() as session, session.begin():
        session.execute(
            update(Bulletin)
            .where(which, Bulletin.published_at.is_(None))
            .values(published_at=utcnow())
            .execution_options(synchronize_session=False)
        )


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
    _mark_published(sessions, unpublished)
    with sessions() as session, session.begin():
        settle(session)
    return total


def status_guard(status: MessageStatus):
    """`message.status = <status>` for statements that pick rows by primary key.

    Written as `status || '' = …` so that the database cannot use a status index for it: with
    statistics that lag behind a bulk launch PostgreSQL otherwise scans every message of that
    status for each batch (measured: 57 ms instead of 2 ms for 500 ids among 10,000 queued).
    `message` has no status index any more (its status writes are HOT updates, models.Message);
    the guard stays for any that comes back (plain `status = …` measured no faster without one).
    """
    return type_coerce(Message.status, String).concat("") == status.value


def claim(session: Session, message_ids: Sequence[int], worker: str | None = None) -> list[int]:
    """Move `queued` messages to `sending`; returns the ids this caller now owns, sorted.

    Only these may be sent: a duplicated queue entry, or a message cancelled meanwhile, claims
    nothing. Increments `attempts`. The caller commits before sending, so no one else can claim
    them (on PostgreSQL a concurrent claim waits for that commit and then finds no `queued` row).
    The claim is a lease held by `worker` (gateway/queue/lease.py): a worker that renews it
    keeps the messages, one that dies loses them back to the queue.
    """
    ids = sorted({int(i) for i in message_ids})
    owned: list[int] = []
    now = utcnow()
    for chunk in _chunks(ids):
        result = session.execute(
            update(Message)
            .where(Message.id.in_(chunk), status_guard(MessageStatus.queued))
            .values(
                status=MessageStatus.sending,
                attempts=Message.attempts + 1,
                claimed_by=worker,
                claimed_at=now,
                dispatched_at=None,
            )
            .returning(Message.id)
            .execution_options(synchronize_session=False)
        )
        owned.extend(result.scalars())
    return sorted(owned)
