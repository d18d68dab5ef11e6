"""The rollup that keeps a year of messages fast to count: `action_reach` holds, per settled action,
what `gateway.stats.query.counted_reach` would count from its messages.

How it stays fresh: an action is rolled up only once it has been closed for STATS_SETTLE_HOURS
(its closing messages sent, their delivery receipts in); the housekeeping job `stats-rollup`
does that every STATS_ROLLUP_SECONDS. Until then the statistics count the action's messages
directly, and tips and outcomes are never rolled up, so marking shows at once. A receipt that
arrives after the settle time is not counted unless `refresh()` is run for that action again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, literal, select
from sqlalchemy.orm import Session

from gateway.stats.query import REACH_COLUMNS, counted_reach
from gateway.storage.models import Action, ActionReach, ActionStatus, ReachRollup, UTCDateTime

BATCH = 200  # actions per statement: a few hundred thousand messages


def refresh(session: Session, action_ids: Sequence[int], now: datetime) -> None:
    """(Re)write the rollup rows of these actions from their messages; the caller commits."""
    ids = list(action_ids)
    if not ids:
        return
    session.execute(delete(ActionReach).where(ActionReach.action_id.in_(ids)))
    session.execute(delete(ReachRollup).where(ReachRollup.action_id.in_(ids)))
    session.execute(
        insert(ActionReach).from_select(list(REACH_COLUMNS), counted_reach(select(Action.id).where(Action.id.in_(ids))))
    )
    session.execute(
        insert(ReachRollup).from_select(
            ["action_id", "rolled_up_at"],
            select(Action.id, literal(now, UTCDateTime())).where(Action.id.in_(ids)),
        )
    )


def settled_not_rolled_up(session: Session, now: datetime, settle_hours: float, limit: int = BATCH) -> list[int]:
    """Actions closed at least `settle_hours` ago that are not in the rollup yet."""
    return list(session.scalars(
        select(Action.id)
        .where(
            Action.status == ActionStatus.closed,
            Action.closed_at <= now - timedelta(hours=settle_hours),
            ~select(ReachRollup.action_id).where(ReachRollup.action_id == Action.id).exists(),
        )
        .order_by(Action.id)
        .limit(limit)
    ))


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
