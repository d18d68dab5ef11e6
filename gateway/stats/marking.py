"""Marking, the centralist's part of success counting: is a tip useful, did it lead to success,
and what was the action's outcome (set on close, or set or corrected afterwards)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from gateway.errors import Conflict, NotFound
from gateway.policy import require_action_owner
from gateway.storage.models import Action, ActionStatus, Outcome, Tip, User


def mark_tip(session: Session, user: User, tip_id: int, changes: dict, now: datetime) -> Tip:
    """Set `useful` and/or `led_to_success` (None clears a mark); remembers who marked and when."""
    tip = session.get(Tip, tip_id, with_for_update=True)
    if tip is None:
        raise NotFound(f"tip {tip_id} does not exist", tip_id=tip_id)
    require_action_owner(user, session.get(Action, tip.action_id) if tip.action_id else None)
    for name in ("useful", "led_to_success"):
        if name in changes:
            setattr(tip, name, changes[name])
    tip.marked_by, tip.marked_at = user.id, now
    return tip


def set_outcome(
    session: Session, user: User, action_id: int, outcome: Outcome, detail: str | None, note: str | None
) -> Action:
    """Set or correct the outcome of a closed action (an expired one included). The closing message
    has gone out already and is not sent again; only the statistics follow."""
    action = session.get(Action, action_id, with_for_update=True)
    if action is None:
        raise NotFound(f"action {action_id} does not exist", action_id=action_id)
    require_action_owner(user, action)
    if action.status != ActionStatus.closed:
        raise Conflict(
            f"action {action_id} is {action.status.value}; close it with its outcome (POST …/close)",
            status=action.status.value,
        )
    action.outcome, action.outcome_detail = outcome, detail
    if note is not None:
        action.outcome_note = note
    return action
