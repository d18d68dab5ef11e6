"""The tip log: one row per call to the tip line (opened on arrival, finished at hangup) or SMS.

A call's records — opened when it arrives, re-routed after a menu or code prompt, ended at
hangup — reach SQL through a writer (a Redis stream and the `burgernet tip-writer` process, or
the IVR's own writer thread without Redis), many calls to one statement. Writers may be several,
records may be replayed after a crash and the opening and the end of a call may come from
different IVR processes, so `record_calls` gives the same rows whatever the order of the records
and however often each is applied. A call's end carries its legs — every phone rung, in order —
which go to `tip_leg`; the tip's talk time is that of the answered leg, counted from the moment
the centralist (or the meldkamer) picked up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import cast

from sqlalchemy import Table, case, func, insert, select
from sqlalchemy.orm import Session

from gateway.storage.db import upsert
from gateway.storage.models import MatchedBy, Participant, Tip, TipChannel, TipLeg
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
class Leg:
    """One phone rung for a call: from the dialplan's [put-through] (dialplans/lib.conf)."""

    dialed: str
    dial_status: str
    rung_at: datetime
    answered_at: datetime | None
    ended_at: datetime

    @property
    def talk_seconds(self) -> int | None:
        """Seconds from the answer to the end, rounded; None when the phone never answered."""
        if self.answered_at is None:
            return None
        return max(0, round((self.ended_at - self.answered_at).total_seconds()))


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call hung up: what became of it (None: the dialplan did not say)."""

    call_id: str
    ended_at: datetime
    dial_status: str | None = None
    talk_seconds: int | None = None
    routed_to: str | None = None  # the last phone rung (the meldkamer after a centralist, say)
    recording_path: str | None = None
    legs: tuple[Leg, ...] = ()


TipRecord = CallOpened | CallEnded

# The dialplan's text of a call's legs: `dialed|status|rung|answered|ended^` per leg, times as epoch
# seconds with milliseconds, `answered` empty when the phone never answered.
_LEG_END, _FIELD = "^", "|"


def parse_legs(text: str) -> tuple[Leg, ...]:
    """The legs in the dialplan's text; ValueError when it is not that text."""
    legs = []
    for raw in text.split(_LEG_END):
        if not raw:
            continue
        dialed, status, rung, answered, ended = raw.split(_FIELD)
        if not dialed or not status:
            raise ValueError(f"leg without a dial string or a status: {raw!r}")
        legs.append(Leg(dialed, status, _epoch(rung), _epoch(answered) if answered else None, _epoch(ended)))
    return tuple(legs)


def format_legs(legs: Sequence[Leg]) -> str:
    """The dialplan's text of `legs` (parse_legs reads it back)."""
    return "".join(
        _FIELD.join(
            (
                leg.dialed,
                leg.dial_status,
                _stamp(leg.rung_at),
                "" if leg.answered_at is None else _stamp(leg.answered_at),
                _stamp(leg.ended_at),
            )
        )
        + _LEG_END
        for leg in legs
    )


def talk_seconds(legs: Sequence[Leg]) -> int | None:
    """A call's talk time: that of the leg that was answered (the dialplan stops ringing after it)."""
    return next((leg.talk_seconds for leg in reversed(legs) if leg.answered_at is not None), None)


def _epoch(text: str) -> datetime:
    return datetime.fromtimestamp(float(text), UTC)


def _stamp(at: datetime) -> str:
    return f"{at.timestamp():.3f}"


def record_calls(session: Session, records: Sequence[TipRecord]) -> None:
    """Apply tip records of calls, in any order and any number of times: the same rows result."""
    endings = [r for r in records if isinstance(r, CallEnded)]
    record_openings(session, [r for r in records if isinstance(r, CallOpened)])
    record_endings(session, endings)
    record_legs(session, endings)


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


def record_legs(session: Session, endings: Sequence[CallEnded]) -> None:
    """The legs of ended calls (their tips exist: `record_endings` went first). A leg is final
    when reported, so one applied again is left as it is."""
    rows = {
        (e.call_id, n): {
            "call_id": e.call_id,
            "leg": n,
            "dialed": leg.dialed[:200],
            "dial_status": leg.dial_status[:20],
            "rung_at": leg.rung_at,
            "answered_at": leg.answered_at,
            "ended_at": leg.ended_at,
            "talk_seconds": leg.talk_seconds,
        }
        for e in endings
        for n, leg in enumerate(e.legs, 1)
    }
    if not rows:
        return
    known = session.execute(
        select(TipLeg.call_id, TipLeg.leg).where(TipLeg.call_id.in_({call_id for call_id, _ in rows}))
    ).all()
    for call_id, leg in known:
        rows.pop((call_id, leg), None)
    if rows:
        session.execute(insert(TipLeg), list(rows.values()))
