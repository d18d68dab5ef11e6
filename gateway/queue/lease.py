"""Leases on claimed messages: what a dead worker left `sending` comes back.

`claim()` records who claimed a message (`claimed_by`) and when (`claimed_at`). A living worker
renews its leases (`renew`) well within `lease_seconds`; `requeue_stale` returns the `sending`
messages of a channel whose lease ran out to `queued` and publishes them again; `upkeep` does
both, and `keep_up` runs it for a worker's lifetime. Channel-agnostic: both workers use it.

`dispatched_at` tells the two kinds of stale message apart: NULL means the worker never handed it
to the provider (requeued: sent once later), set means it may have reached the provider before
the worker died. Those are requeued too — a possible duplicate is better than a missing alert —
and counted, so the caller can log the bound ("at most N of these may arrive twice").
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, func, select, type_coerce, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from gateway.errors import brief
from gateway.storage.db import rowcount
from gateway.storage.models import Message, MessageStatus, utcnow

from .base import CHUNK, WorkQueue, channel_name
from .publish import chunks, publish_messages
from .settle import in_unsettled_bulletin, settle

log = logging.getLogger(__name__)

REQUEUED_DETAIL = "requeued: the worker that claimed it stopped"
# The same, for a message that had been dispatched: the next worker may look for proof that the
# provider has it (SMS: a delivery receipt) before sending it again.
REQUEUED_DISPATCHED_DETAIL = "requeued: the worker that claimed it stopped after dispatching it"


def worker_id(channel: str) -> str:
    """A name for this worker process that no other living worker has (host and pid)."""
    return f"{channel_name(channel)}-{socket.gethostname()[:40]}-{os.getpid()}"


@dataclass(frozen=True)
class Requeued:
    """What `requeue_stale` returned to the queue."""

    total: int
    dispatched: int  # may have reached the provider already: these may arrive twice


def renew(
    session: Session,
    worker: str,
    now: datetime | None = None,
    older_than: timedelta | None = None,
    holding: Collection[int] | None = None,
) -> int:
    """Extend the leases of every message `worker` still holds; returns how many. Caller commits.

    With `older_than`, only leases taken or renewed longer ago than that: most messages are done
    long before, and rewriting every held row each round locked the rows the worker was writing
    statuses to (and added a row version per message). With `holding`, only these messages: the
    ones the worker has in hand. A message claimed in its name that it does not have — a claim
    whose commit went through while its answer was lost with the connection — then runs out of
    lease and goes again, instead of staying `sending` for as long as the worker lives."""
    stamp = now or utcnow()
    held = [Message.claimed_by == worker, Message.status == MessageStatus.sending, in_unsettled_bulletin()]
    if older_than is not None:
        held.append(Message.claimed_at < stamp - older_than)
    renewal = update(Message).values(claimed_at=stamp).execution_options(synchronize_session=False)
    if holding is None:
        return rowcount(session.execute(renewal.where(*held)))
    ids = sorted(holding)
    return sum(
        rowcount(session.execute(renewal.where(*held, Message.id.in_(ids[start : start + CHUNK]))))
        for start in range(0, len(ids), CHUNK)
    )


def mark_dispatched(
    session: Session, message_ids: Sequence[int], worker: str, now: datetime | None = None
) -> None:
    """Record that these messages are about to be handed to the provider. Caller commits — before
    handing them over, or the mark protects nothing."""
    stamp = now or utcnow()
    for start in range(0, len(message_ids), CHUNK):
        session.execute(
            update(Message)
            .where(
                Message.id.in_(message_ids[start : start + CHUNK]),
                Message.claimed_by == worker,
                status_guard(MessageStatus.sending),
            )
            .values(dispatched_at=stamp)
            .execution_options(synchronize_session=False)
        )


def upkeep(
    sessions: sessionmaker[Session],
    queue: WorkQueue,
    channel: str,
    worker: str,
    lease_seconds: float,
    holding: Collection[int] | None = None,
) -> Requeued:
    """A living worker's periodic duty (every quarter lease): renew its own leases (of `holding`,
    when it says which messages it has in hand; see `renew`), queue again what a stopped worker
    of the channel left `sending`, and settle the bulletins that are done (so that these scans
    stay small without a housekeeping process)."""
    with sessions() as session, session.begin():
        # Only the leases older than a quarter lease: none gets older than about half of it.
        renew(session, worker, older_than=timedelta(seconds=lease_seconds / 4), holding=holding)
    requeued = requeue_stale(sessions, queue, channel, lease_seconds)
    with sessions() as session, session.begin():
        settle(session)
    return requeued


async def keep_up(
    one_round: Callable[[list[int]], object],
    in_hand: Callable[[], list[int]],
    lease_seconds: float,
    worker: str,
) -> None:
    """A worker's lease upkeep for its lifetime (until cancelled): `one_round(in_hand())` in a
    thread every quarter lease — `upkeep` and what the worker logs of it. `in_hand` is called
    here, on the event loop: the thread must not iterate what the loop changes. A failed round
    does not stop the worker: the database away is one line in the log (it fails every round
    until it is back), anything else a traceback."""
    every = max(lease_seconds / 4, 0.2)
    while True:
        try:
            await asyncio.to_thread(one_round, in_hand())
        except OperationalError as exc:
            log.warning("%s: lease upkeep failed (%s); trying again in %.1f s", worker, brief(exc), every)
        except Exception:
            log.exception("%s: lease upkeep failed; trying again in %.1f s", worker, every)
        await asyncio.sleep(every)


def requeue_stale(
    sessions: sessionmaker[Session],
    queue: WorkQueue,
    channel: str,
    lease_seconds: float,
    now: datetime | None = None,
) -> Requeued:
    """Return `channel`'s `sending` messages whose lease is older than `lease_seconds` to `queued`
    and publish them; returns how many (and how many of them were dispatched)."""
    cutoff = (now or utcnow()) - timedelta(seconds=lease_seconds)
    name = channel_name(channel)
    stale = (
        (Message.channel == name)
        & (Message.status == MessageStatus.sending)
        & (Message.claimed_at < cutoff)
        & in_unsettled_bulletin()
    )
    with sessions() as session, session.begin():
        dispatched = session.execute(
            select(func.count()).select_from(Message).where(stale, Message.dispatched_at.is_not(None))
        ).scalar_one()
        ids: list[int] = []
        for dispatched_before, detail in ((True, REQUEUED_DISPATCHED_DETAIL), (False, REQUEUED_DETAIL)):
            mark = (
                Message.dispatched_at.is_not(None) if dispatched_before else Message.dispatched_at.is_(None)
            )
            ids += session.execute(
                update(Message)
                .where(stale, mark)
                .values(
                    status=MessageStatus.queued,
                    claimed_by=None,
                    claimed_at=None,
                    dispatched_at=None,
                    enqueued_at=None,
                    detail=detail,
                )
                .returning(Message.id)
                .execution_options(synchronize_session=False)
            ).scalars()
    if ids:
        # enqueued_at is NULL until this publish is done: a crash in between leaves them to reconcile().
        publish_messages(sessions, queue, {name: sorted(ids)})
    return Requeued(len(ids), dispatched if ids else 0)


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
    for chunk in chunks(ids):
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
