"""The tip log: one row per call to the tip line (opened on arrival, finished at hangup) or SMS.

A call's records — opened when it arrives, re-routed after a menu or code prompt, ended at
hangup — reach SQL through a writer (a Redis stream and the `burgernet tip-writer` process, or
the IVR's own writer thread without Redis), many calls to one statement. Writers may be several,
records may be replayed after a crash and the opening and the end of a call may come from
different IVR processes, so `record_calls` gives the same rows whatever the order of the records
and however often each is applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import cast

from sqlalchemy import Table, case, func, select
from sqlalchemy.orm import Session

from gateway.storage.db import upsert
from gateway.storage.models import MatchedBy, Participant, Tip, TipChannel
from gateway.tipline.routing import Route

# The table, not the ORM class: a batch is one executemany without the ORM's bulk machinery.
_TIP_TABLE = cast(Table, Tip.__table__)
_TIP = _TIP_TABLE.c


@dataclass(frozen=True, slots=True)
class CallOpened:
    """A call arrived, or its route was decided: what the tip record starts with.

    `routed_to` is None while the route is not decided yet (a menu or code prompt follows)."""

    call_id: str
    caller: str | None
    route: Route
    routed_to: str | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call hung up: what became of it (None: the dialplan did not say)."""

    call_id: str
    ended_at: datetime
    dial_status: str | None = None
    talk_seconds: int | None = None
    routed_to: str | None = None  # the last phone rung (the meldkamer after a centralist, say)
    recording_path: str | None = None


TipRecord = CallOpened | CallEnded


def record_calls(session: Session, records: Sequence[TipRecord]) -> None:
    """Apply tip records of calls, in any order and any number of times: the same rows result."""
    record_openings(session, [r for r in records if isinstance(r, CallOpened)])
    record_endings(session, [r for r in records if isinstance(r, CallEnded)])


def record_openings(session: Session, openings: Sequence[CallOpened]) -> None:
    """Open (or re-route) the tip records of many calls in one statement.

    A call logged twice (before a menu or code prompt, then with its decision) keeps the first
    arrival time and the decided route; an opening applied after the call's end (replayed, or
    from another writer) leaves the end's phone rung in place.
    """
    if not openings:
        return
    latest: dict[str, dict] = {}
    for o in openings:
        row = latest.get(o.call_id)
        if row is None:
            row = latest[o.call_id] = {
                "channel": TipChannel.call,
                "call_id": o.call_id,
                "received_at": o.received_at,
                "caller_number": o.caller,
            }
        else:
            row["received_at"] = min(row["received_at"], o.received_at)
            row["caller_number"] = row["caller_number"] or o.caller
            if row["routed_to"] is not None and o.routed_to is None:
                continue  # an undecided opening never takes a decided route back
        row.update(
            matched_by=o.route.matched_by,
            action_id=o.route.alert.action_id if o.route.alert else None,
            routed_to=o.routed_to,
        )
    owners = _owners(session, {row["caller_number"] for row in latest.values() if row["caller_number"]})
    rows = [{**row, "participant_id": owners.get(row["caller_number"])} for row in latest.values()]
    session.execute(_openings_upsert(session.get_bind().dialect.name), rows)


def _owners(session: Session, phones: set[str]) -> dict[str, int]:
    """A number's participant is its oldest registration."""
    if not phones:
        return {}
    return dict(
        session.execute(
            select(Participant.phone, func.min(Participant.id))
            .where(Participant.phone.in_(phones))
            .group_by(Participant.phone)
        ).all()
    )


def record_sms_tip(
    session: Session,
    sender: str,
    text: str,
    received_at: datetime,
    *,
    action_id: int | None,
    matched_by: MatchedBy,
) -> Tip:
    """An SMS tip (an MO message that is not a STOP), flushed but not committed."""
    tip = Tip(
        channel=TipChannel.sms,
        received_at=received_at,
        ended_at=received_at,
        caller_number=sender,
        participant_id=_owners(session, {sender}).get(sender),
        action_id=action_id,
        matched_by=matched_by,
        sms_text=text,
    )
    session.add(tip)
    session.flush()
    return tip


@cache  # built once per dialect: building it costs more CPU than running it for a batch
def _openings_upsert(dialect: str):
    insert = upsert(dialect, _TIP_TABLE)
    new, old = insert.excluded, _TIP
    decided = new.routed_to.is_not(None)
    return insert.on_conflict_do_update(
        index_elements=[old.call_id],
        set_={
            "received_at": case((new.received_at < old.received_at, new.received_at), else_=old.received_at),
            "caller_number": func.coalesce(old.caller_number, new.caller_number),
            "participant_id": func.coalesce(old.participant_id, new.participant_id),
            "matched_by": case((decided, new.matched_by), else_=old.matched_by),
            "action_id": case((decided, new.action_id), else_=old.action_id),
            "routed_to": case(
                (decided & (old.ended_at.is_(None) | old.routed_to.is_(None)), new.routed_to),
                else_=old.routed_to,
            ),
        },
    )


def record_endings(session: Session, endings: Sequence[CallEnded]) -> None:
    """Finish the tip records of many calls in one statement.

    A call whose opening is not in SQL yet gets its row now, with the end as its arrival time
    until the opening arrives (a call whose IVR failed still counts as a tip)."""
    if not endings:
        return
    latest: dict[str, dict] = {}
    for e in endings:
        row = latest.setdefault(
            e.call_id, {"channel": TipChannel.call, "call_id": e.call_id, "received_at": e.ended_at}
        )
        row["ended_at"] = e.ended_at
        for name in ("dial_status", "talk_seconds", "routed_to", "recording_path"):
            if (value := getattr(e, name)) is not None or name not in row:
                row[name] = value
    session.execute(_endings_upsert(session.get_bind().dialect.name), list(latest.values()))


@cache
def _endings_upsert(dialect: str):
    insert = upsert(dialect, _TIP_TABLE)
    new = insert.excluded
    return insert.on_conflict_do_update(
        index_elements=[_TIP.call_id],
        set_={
            "ended_at": new.ended_at,
            **{
                name: func.coalesce(getattr(new, name), _TIP[name])
                for name in ("dial_status", "talk_seconds", "routed_to", "recording_path")
            },
        },
    )
