"""The tip log: one row per call to the tip line (opened on arrival, finished at hangup) or SMS.

The tip line writes on every call, right after routing it, and these writes are most of the
IVR's CPU per call: openings are therefore written many calls to one statement (ivr/tiplog.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.storage.models import MatchedBy, Participant, Tip, TipChannel
from gateway.tipline.routing import Route

_UPSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


@dataclass(frozen=True, slots=True)
class CallOpened:
    """A call arrived, or its route was decided: what the tip record starts with."""

    call_id: str
    caller: str | None
    route: Route
    routed_to: str | None
    received_at: datetime


_ROUTE_FIELDS = ("matched_by", "action_id", "routed_to")


def record_openings(session: Session, openings: Sequence[CallOpened]) -> None:
    """Open (or re-route) the tip records of many calls in one statement.

    A call logged twice (before a menu or code prompt, then with its decision) keeps the first
    arrival time and the last route.
    """
    latest: dict[str, dict] = {}
    for o in openings:
        row = latest.setdefault(o.call_id, {"channel": TipChannel.call, "call_id": o.call_id, "received_at": o.received_at, "caller_number": o.caller})
        row.update(matched_by=o.route.matched_by, action_id=o.route.alert.action_id if o.route.alert else None, routed_to=o.routed_to)
    owners = _owners(session, {row["caller_number"] for row in latest.values() if row["caller_number"]})
    rows = [{**row, "participant_id": owners.get(row["caller_number"])} for row in latest.values()]
    insert = _UPSERT[session.get_bind().dialect.name](Tip)
    session.execute(insert.on_conflict_do_update(index_elements=[Tip.call_id], set_={f: insert.excluded[f] for f in _ROUTE_FIELDS}), rows)


def _owners(session: Session, phones: set[str]) -> dict[str, int]:
    """A number's participant is its oldest registration."""
    if not phones:
        return {}
    return dict(session.execute(
        select(Participant.phone, func.min(Participant.id)).where(Participant.phone.in_(phones)).group_by(Participant.phone)
    ).all())


def record_sms_tip(session: Session, sender: str, text: str, received_at: datetime, *,
                   action_id: int | None, matched_by: MatchedBy) -> Tip:
    """An SMS tip (an MO message that is not a STOP), flushed but not committed."""
    tip = Tip(channel=TipChannel.sms, received_at=received_at, ended_at=received_at, caller_number=sender,
              participant_id=_owners(session, {sender}).get(sender), action_id=action_id,
              matched_by=matched_by, sms_text=text)
    session.add(tip)
    session.flush()
    return tip


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
