"""The tip log: one row per call to the tip line (opened on arrival, finished at hangup) or SMS."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.storage.models import Participant, Tip, TipChannel
from gateway.tipline.routing import Route


def participant_of(session: Session, phone: str | None) -> int | None:
    """The participant a number belongs to (the oldest registration), if any."""
    if phone is None:
        return None
    return session.scalar(select(Participant.id).where(Participant.phone == phone).order_by(Participant.id).limit(1))


def open_call(session: Session, call_id: str, caller: str | None, route: Route, routed_to: str | None, now: datetime) -> Tip:
    """A call arrived: log it at once, so that a call that dies early is still counted."""
    tip = session.scalar(select(Tip).where(Tip.call_id == call_id))
    if tip is None:
        tip = Tip(channel=TipChannel.call, call_id=call_id, received_at=now, caller_number=caller,
                  participant_id=participant_of(session, caller))
        session.add(tip)
    record_route(tip, route, routed_to)
    session.flush()
    return tip


def record_route(tip: Tip, route: Route, routed_to: str | None) -> None:
    tip.matched_by = route.matched_by
    tip.action_id = route.alert.action_id if route.alert else None
    tip.routed_to = routed_to


def finish_call(
    session: Session,
    call_id: str,
    now: datetime,
    *,
    dial_status: str | None,
    talk_seconds: int | None,
    routed_to: str | None = None,
    recording_path: str | None = None,
) -> Tip | None:
    """The call hung up: what became of it. Returns None for a call that was never opened."""
    tip = session.scalar(select(Tip).where(Tip.call_id == call_id))
    if tip is None:
        return None
    tip.ended_at = now
    tip.dial_status = dial_status or tip.dial_status
    tip.talk_seconds = talk_seconds if talk_seconds is not None else tip.talk_seconds
    tip.routed_to = routed_to or tip.routed_to
    tip.recording_path = recording_path or tip.recording_path
    session.flush()
    return tip
