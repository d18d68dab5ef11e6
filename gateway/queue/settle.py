"""Where the open messages are: in the bulletins that are not settled yet.

A message is open while `queued` or `sending`. The scans for open messages (lease upkeep,
reconcile) used to read an index on `message.status`; that index made every status write a
non-HOT update, which inserts a new entry into each of the table's indexes. Now `message` has no
index on a column its status writes change, and the scans go through the bulletin instead: the
`(bulletin_id, phone)` index, for the few bulletins not yet settled.

A bulletin is settled once it is fanned out and none of its messages is open. It stays settled:
a message never opens again once it is final (only a lease that runs out turns `sending` back
into `queued`, and that message was open all along), and messages are only created while the
bulletin's `fanned_out_at` is NULL.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from gateway.storage.db import rowcount
from gateway.storage.models import Bulletin, Message, MessageStatus, utcnow

OPEN = (MessageStatus.queued, MessageStatus.sending)


def in_unsettled_bulletin():
    """The condition on `Message` that narrows a scan for open messages to unsettled bulletins."""
    return Message.bulletin_id.in_(select(Bulletin.id).where(Bulletin.settled_at.is_(None)))


def settle(session: Session, now: datetime | None = None) -> int:
    """Mark every bulletin settled that has no open message left; returns how many. Caller commits.

    Safe against a fan-out in progress: a bulletin whose `fanned_out_at` is NULL is left alone,
    and once it is set no message is added. A message that becomes final after this statement's
    snapshot only postpones the bulletin to the next round."""
    still_open = exists().where(Message.bulletin_id == Bulletin.id, Message.status.in_(OPEN))
    result = session.execute(
        update(Bulletin)
        .where(Bulletin.settled_at.is_(None), Bulletin.fanned_out_at.is_not(None), ~still_open)
        .values(settled_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)
