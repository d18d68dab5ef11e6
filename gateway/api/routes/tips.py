"""Marking tips for success counting."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path

from gateway import audit
from gateway.api.deps import CentralistDep, SessionDep
from gateway.api.schemas import TipMark, TipPublic
from gateway.stats import marking

router = APIRouter(prefix="/api/v1/tips", tags=["success"])
TipId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.patch("/{tip_id}", response_model=TipPublic)
def mark_tip(tip_id: TipId, body: TipMark, session: SessionDep, user: CentralistDep):
    """Mark a tip useful or not, and whether it led to success (the action's centralist, or an admin)."""
    changes = body.model_dump(exclude_unset=True)
    tip = marking.mark_tip(session, user, tip_id, changes, datetime.now(UTC))
    audit.record(session, user, "tip.mark", "tip", tip_id, ",".join(sorted(changes)))
    session.commit()
    return TipPublic.model_validate(tip)
