"""What the IVR's handlers read from and write to the database: the IVR's only SQL.

Handlers never open a session or run a statement: they call these functions with the context
the server made (ivr.main), which owns the session factory and the writers. Reads are one query
each; writes go to the context's tip writer, off the caller's path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.storage.models import Action, ActionStatus, Centralist, MatchedBy, Message, MessageStatus
from gateway.tipline import tips
from gateway.tipline.routing import OpenAlert, Route, Step
from ivr.context import IvrContext

_MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class Alert:
    """What the call needs from the database, read once when it is answered."""

    message_id: int
    phone: str
    action_id: int
    action_code: str
    action_open: bool
    launched_at: datetime | None
    centralist_dial: str


def find_alert(ctx: IvrContext, raw_id: str) -> Alert | None:
    """The message, its action and the action's centralist; None for an id that is not a message."""
    raw_id = raw_id.strip()
    if not raw_id.isascii() or not raw_id.isdigit() or not 0 < int(raw_id) <= _MAX_ID:
        return None
    query = (
        select(
            Message.id,
            Message.phone,
            Action.id,
            Action.action_code,
            Action.status,
            Action.launched_at,
            Centralist.dial_string,
        )
        .join(Action, Action.id == Message.action_id)
        .join(Centralist, Centralist.id == Action.centralist_id)
        .where(Message.id == int(raw_id))
    )
    with ctx.sessions() as session:
        row = session.execute(query).one_or_none()
    if row is None:
        return None
    mid, phone, action_id, code, status, launched_at, dial = row
    return Alert(mid, phone, action_id, code or "", status is ActionStatus.open, launched_at, dial)


def record_outcome(ctx: IvrContext, message_id: int, status: MessageStatus, detail: str) -> None:
    now = datetime.now(UTC)

    def write(session: Session) -> None:
        session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(status=status, detail=detail[:200], final_at=now)
        )

    ctx.tips.submit(write)


def open_tip(ctx: IvrContext, call_id: str, alert: Alert, dial: str) -> None:
    """Pressing 2 is a tip about this action (docs/voice.md); matched by the number we called."""
    now = datetime.now(UTC)
    route = Route(
        Step.centralist,
        MatchedBy.caller_id,
        OpenAlert(alert.action_id, alert.action_code, dial, alert.launched_at or now),
    )
    ctx.tips.submit(tips.CallOpened(call_id, alert.phone, route, dial, now))
