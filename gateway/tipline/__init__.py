"""The 0800-0011 tip line: where a participant's call goes, and the log of every tip.

What other channels use of it (the SMS channel's MO messages): `caller_number`, a caller's
number as the tip line reads it, and `sms_tip`, an SMS tip tied to the action that alerted its
sender.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from gateway.storage.models import MatchedBy, Tip
from gateway.tipline.lookup import alerts_for_sql
from gateway.tipline.routing import caller_number
from gateway.tipline.tips import record_sms_tip

__all__ = ["caller_number", "sms_tip"]


def sms_tip(session: Session, sender: str, text: str, received_at: datetime) -> Tip:
    """Record an SMS tip from `sender` (E.164); flushed, not committed. It goes to the sender's
    most recent open action whose alert reached the number (as a call to the tip line would), or
    stays unmatched (no action) when there is none."""
    alerts = alerts_for_sql(session, sender)
    latest = max(alerts, key=lambda a: (a.launched_at, a.action_id), default=None)
    return record_sms_tip(
        session,
        sender,
        text,
        received_at,
        action_id=latest.action_id if latest else None,
        matched_by=MatchedBy.caller_id if latest else MatchedBy.none,
    )
