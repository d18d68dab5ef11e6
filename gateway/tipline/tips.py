"""The tip log: one row per call to the tip line (opened on arrival, finished at hangup) or SMS.

Each write is one SQL statement: the tip line writes on every call, right after routing it, and
the IVR's capacity is set by the CPU these writes take.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.storage.models import Participant, Tip, TipChannel
from gateway.tipline.routing import Route

_UPSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def participant_of(phone: str):
    """The participant a number belongs to (the oldest registration), as a scalar subquery."""
    return select(Participant.id).where(Participant.phone == phone).order_by(Participant.id).limit(1).scalar_subquery()


def open_call(session: Session, call_id: str, caller: str | None, route: Route, routed_to: str | None, now: datetime) -> None:
    """A call arrived (or its route was decided): log it at once, so that a call that dies early
    is still counted. Called again for the same call, it updates the route."""
    route_fields = {
        "matched_by": route.matched_by,
        "action_id": route.alert.action_id if route.alert else None,
        "routed_to": routed_to,
    }
    insert = _UPSERT[session.get_bind().dialect.name](Tip).values(
        channel=TipChannel.call,
        call_id=call_id,
        received_at=now,
        caller_number=caller,
        participant_id=participant_of(caller) if caller else None,
        **route_fields,
    )
    session.execute(insert.on_conflict_do_update(index_elements=[Tip.call_id], set_=route_fields))


def finish_call(
    session: Session,
    call_id: str,
    now: datetime,
    *,
    dial_status: str | None,
    talk_seconds: int | None,
    routed_to: str | None = None,
    recording_path: str | None = None,
) -> bool:
    """The call hung up: what became of it. False for a call that was never opened."""
    given = {"dial_status": dial_status, "talk_seconds": talk_seconds, "routed_to": routed_to, "recording_path": recording_path}
    changes = {"ended_at": now, **{k: v for k, v in given.items() if v is not None}}
    return session.execute(update(Tip).where(Tip.call_id == call_id).values(**changes)).rowcount == 1
