"""The dry-run outbox: a channel worker that records messages as sent without sending them.

It stands in for the SMS and voice channels on a machine with no SMSC and no Asterisk (the demo),
and shows the worker protocol every real channel follows: consume ids from the queue, claim them
in SQL (so a duplicate queue entry is never sent twice), hand them on, record the result, ack.
"""

from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from gateway.queue import WorkQueue, claim
from gateway.storage.models import Message, MessageStatus

DRY_RUN_DETAIL = "dry run: recorded, not sent (no SMSC/Asterisk configured)"


def drain(sessions: sessionmaker[Session], queue: WorkQueue, channel: str, consumer: str = "dry-run") -> int:
    """Take everything now on `channel`'s queue and mark it submitted; returns how many."""
    done = 0
    while deliveries := queue.consume(channel, consumer, count=1000, block_ms=0):
        with sessions() as session:
            owned = claim(session, [d.message_id for d in deliveries])
            if owned:
                now = datetime.now(UTC)
                session.execute(
                    update(Message)
                    .where(Message.id.in_(owned))
                    .values(status=MessageStatus.submitted, detail=DRY_RUN_DETAIL, sent_at=now)
                    .execution_options(synchronize_session=False)
                )
            session.commit()
        queue.ack(channel, [d.entry_id for d in deliveries])
        done += len(owned)
    return done
