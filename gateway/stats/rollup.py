"""The rollups that keep a year of messages and a national population fast to count.

`action_reach` holds, per settled action, what `gateway.stats.query.counted_reach` would count
from its messages; `signup_day` the participants registered and unsubscribed per municipality and
day, for the days before today (`rebuild_signups`; today is always counted live).

How it stays fresh: an action is rolled up only once it has been closed for STATS_SETTLE_HOURS
(its closing messages sent, their delivery receipts in); the housekeeping job `stats-rollup`
does that every STATS_ROLLUP_SECONDS. Until then the statistics count the action's messages
directly, and tips and outcomes are never rolled up, so marking shows at once. A receipt that
arrives after the settle time is not counted unless `refresh()` is run for that action again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import delete, func, insert, literal, select, union_all
from sqlalchemy.orm import Session

from gateway.stats.query import REACH_COLUMNS, counted_reach, utc_day
from gateway.storage.models import (
    Action,
    ActionReach,
    ActionStatus,
    Participant,
    ReachRollup,
    SignupDay,
    SignupRollup,
    UTCDateTime,
)

BATCH = 200  # actions per statement: a few hundred thousand messages


def refresh(session: Session, action_ids: Sequence[int], now: datetime) -> None:
    """(Re)write the rollup rows of these actions from their messages; the caller commits."""
    ids = list(action_ids)
    if not ids:
        return
    session.execute(delete(ActionReach).where(ActionReach.action_id.in_(ids)))
    session.execute(delete(ReachRollup).where(ReachRollup.action_id.in_(ids)))
    session.execute(
        insert(ActionReach).from_select(
            list(REACH_COLUMNS), counted_reach(select(Action.id).where(Action.id.in_(ids)))
        )
    )
    session.execute(
        insert(ReachRollup).from_select(
            ["action_id", "rolled_up_at"],
            select(Action.id, literal(now, UTCDateTime())).where(Action.id.in_(ids)),
        )
    )


def rebuild_signups(session: Session, now: datetime) -> date:
    """Rewrite `signup_day` from the participants for every UTC day before today; the caller commits.

    Rebuilt whole each time (a GROUP BY over the participants, about a second nationally), so
    that deleted participants and corrections leave the past figures within one job interval."""
    through = now.astimezone(UTC).date()
    cut = datetime.combine(through, time(0), UTC)
    p = Participant.__table__
    events = union_all(
        select(
            p.c.municipality_id,
            utc_day(p.c.created_at).label("day"),
            literal(1).label("registered"),
            literal(0).label("unsubscribed"),
        ).where(p.c.created_at < cut),
        select(p.c.municipality_id, utc_day(p.c.unsubscribed_at), literal(0), literal(1)).where(
            p.c.unsubscribed_at < cut
        ),
    ).subquery()
    session.execute(delete(SignupDay))
    session.execute(delete(SignupRollup))
    session.execute(
        insert(SignupDay).from_select(
            ["municipality_id", "day", "registered", "unsubscribed"],
            select(
                events.c.municipality_id,
                events.c.day,
                func.sum(events.c.registered),
                func.sum(events.c.unsubscribed),
            ).group_by(events.c.municipality_id, events.c.day),
        )
    )
    session.execute(insert(SignupRollup).values(id=1, through=through, rebuilt_at=now))
    return through


def settled_not_rolled_up(
    session: Session, now: datetime, settle_hours: float, limit: int = BATCH
) -> list[int]:
    """Actions closed at least `settle_hours` ago that are not in the rollup yet."""
    return list(
        session.scalars(
            select(Action.id)
            .where(
                Action.status == ActionStatus.closed,
                Action.closed_at <= now - timedelta(hours=settle_hours),
                ~select(ReachRollup.action_id).where(ReachRollup.action_id == Action.id).exists(),
            )
            .order_by(Action.id)
            .limit(limit)
        )
    )


def roll_up_settled(sessions, now: datetime, settle_hours: float) -> int:
    """Roll up every settled action, a batch per transaction; returns how many."""
    done = 0
    while True:
        with sessions() as session:
            ids = settled_not_rolled_up(session, now, settle_hours)
            if not ids:
                return done
            refresh(session, ids, now)
            session.commit()
        done += len(ids)
