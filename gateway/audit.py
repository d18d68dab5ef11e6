"""The audit trail (GDPR art. 30/32): who created, launched, changed or closed an action, and who
read, created, changed, deleted or imported participant data — never the data itself (ids,
counts and field names only), so that the trail is no second copy of what it protects.

`record` adds the event to the caller's transaction: it is stored exactly when the change is
(and a read is stored when the route commits it). Rows are never changed (a trigger refuses
UPDATE, migration 0010_security); `prune` deletes those past the retention period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session

from gateway.storage.models import AuditEvent, User, utcnow


def record(
    session: Session,
    user: User | None,
    event: str,
    subject_type: str,
    subject_id: int | None = None,
    detail: str | None = None,
) -> None:
    """RULE: every change to an action and every access to participant data leaves an audit event."""
    session.add(
        AuditEvent(
            at=utcnow(),
            user_id=user.id if user else None,
            role=user.role.value if user else None,
            event=event,
            subject_type=subject_type,
            subject_id=subject_id,
            detail=detail[:500] if detail else None,
        )
    )


@dataclass(frozen=True, slots=True)
class AuditFilters:
    user_id: int | None = None
    event: str | None = None  # exact, or a prefix ending in "." (e.g. "participant.")
    subject_type: str | None = None
    subject_id: int | None = None
    first_day: date | None = None  # UTC days, inclusive
    last_day: date | None = None


def events(session: Session, filters: AuditFilters, limit: int, offset: int) -> list[AuditEvent]:
    """The events that match, newest first."""
    stmt = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit).offset(offset)
    if filters.user_id is not None:
        stmt = stmt.where(AuditEvent.user_id == filters.user_id)
    if filters.event is not None:
        stmt = stmt.where(
            AuditEvent.event.startswith(filters.event, autoescape=True)
            if filters.event.endswith(".")
            else AuditEvent.event == filters.event
        )
    if filters.subject_type is not None:
        stmt = stmt.where(AuditEvent.subject_type == filters.subject_type)
    if filters.subject_id is not None:
        stmt = stmt.where(AuditEvent.subject_id == filters.subject_id)
    if filters.first_day is not None:
        stmt = stmt.where(AuditEvent.at >= _midnight(filters.first_day))
    if filters.last_day is not None:
        stmt = stmt.where(AuditEvent.at < _midnight(filters.last_day + timedelta(days=1)))
    return list(session.scalars(stmt))


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def prune(session: Session, now: datetime, retention_days: int) -> int:
    """RULE: audit events are kept AUDIT_RETENTION_DAYS, then deleted. Returns how many went."""
    pruned = session.execute(delete(AuditEvent).where(AuditEvent.at < now - timedelta(days=retention_days)))
    return cast(CursorResult[Any], pruned).rowcount  # a DELETE's result; execute() is typed wider
