"""The voice worker's SQL: claiming with what calling needs, and each call's outcome written.

Every write after the claim is guarded by `status = 'sending' AND final_at IS NULL`: the IVR
([alert-call], `alert_call`) refines an answered call's detail ("listened to the end", …) and a
close may cancel a message, so the worker never overwrites what somebody else already recorded.
Each write is one short transaction, safe to repeat: a repeat after a commit whose answer was
lost changes nothing (gateway/voice/outcomes.py repeats writes the database refused).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, exists, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import Update

from gateway.queue import REQUEUED_DISPATCHED_DETAIL, claim, mark_dispatched
from gateway.storage.models import (
    Action,
    ActionStatus,
    Bulletin,
    BulletinKind,
    Message,
    MessageStatus,
    Participant,
)

WORKER_STOPPED = "outcome unknown (voice worker stopped)"


@dataclass(frozen=True)
class VoiceCall:
    """A claimed voice message, with what calling it needs."""

    message_id: int
    phone: str  # E.164
    action_id: int
    bulletin_id: int
    text: str
    language: str
    attempts: int  # the message's `attempts` as claimed (this attempt included)


@dataclass(frozen=True)
class Claimed:
    """What a claim gave: the calls to make, and how many were failed instead (`WORKER_STOPPED`)."""

    calls: list[VoiceCall]
    stopped: int = 0


class RetryVerdict(enum.Enum):
    """Whether a busy (or unanswered) number is called again."""

    allowed = "allowed"  # the next attempt is counted: call
    closed = "closed"  # the action closed (or expired) meanwhile: no more attempts
    gone = "gone"  # the message is no longer ours (finished or cancelled elsewhere)


def _now() -> datetime:
    return datetime.now(UTC)


class VoiceStore:
    """The voice messages of one worker (`worker`), in the database."""

    def __init__(self, sessions: sessionmaker[Session], worker: str) -> None:
        self.sessions, self.worker = sessions, worker

    def claim(self, message_ids: list[int]) -> Claimed:
        """Claim these messages (queued → sending, attempts + 1) and read what calling them needs.

        RULE: at most one call per attempt — a message a stopped worker had already dialled
        (requeued with REQUEUED_DISPATCHED_DETAIL) is failed as `WORKER_STOPPED`, never called again.
        """
        # One transaction, the rows read before its commit: only a commit whose answer was lost leaves
        # messages claimed that the worker does not have (their leases then run out).
        with self.sessions() as session, session.begin():
            owned = claim(session, message_ids, worker=self.worker)
            if not owned:
                return Claimed([])
            rows = session.execute(
                select(
                    Message.id,
                    Message.phone,
                    Message.action_id,
                    Message.bulletin_id,
                    Bulletin.spoken_text,
                    Participant.language,
                    Message.attempts,
                    Message.detail,
                )
                .join(Bulletin, Bulletin.id == Message.bulletin_id)
                .outerjoin(Participant, Participant.id == Message.participant_id)
                .where(Message.id.in_(owned))
                .order_by(Message.id)
            ).all()
        dialled = [row.id for row in rows if row.detail == REQUEUED_DISPATCHED_DETAIL]
        for message_id in dialled:
            self.finish(message_id, MessageStatus.failed, WORKER_STOPPED, None)
        calls = [
            VoiceCall(mid, phone, aid, bid, text, language or "nl", attempts)
            for mid, phone, aid, bid, text, language, attempts, detail in rows
            if detail != REQUEUED_DISPATCHED_DETAIL
        ]
        return Claimed(calls, len(dialled))

    def mark_dispatched(self, message_id: int) -> None:
        """Committed before the Originate goes out: a worker that dies now leaves a dialled message."""
        with self.sessions() as session, session.begin():
            mark_dispatched(session, [message_id], self.worker)

    def answered(self, message_id: int, uniqueid: str | None) -> None:
        now = _now()
        with self.sessions() as session, session.begin():
            session.execute(
                update(Message)
                .where(Message.id == message_id)
                .values(provider_id=uniqueid, sent_at=func.coalesce(Message.sent_at, now))
            )
            session.execute(
                _guarded(message_id).values(status=MessageStatus.answered, detail="answered", final_at=now)
            )

    def finish(self, message_id: int, status: MessageStatus, detail: str, uniqueid: str | None) -> None:
        now = _now()
        values: dict[str, Any] = {
            "status": status,
            "detail": detail[:200],
            "final_at": now,
            "sent_at": func.coalesce(Message.sent_at, now),
        }
        if uniqueid:
            values["provider_id"] = uniqueid
        with self.sessions() as session, session.begin():
            session.execute(_guarded(message_id).values(**values))

    def note(self, message_id: int, detail: str, uniqueid: str | None) -> None:
        """A detail on a message still under way ("busy (attempt 1); retrying")."""
        now = _now()
        values: dict[str, Any] = {"detail": detail[:200], "sent_at": func.coalesce(Message.sent_at, now)}
        if uniqueid:
            values["provider_id"] = uniqueid
        with self.sessions() as session, session.begin():
            session.execute(_guarded(message_id).values(**values))

    def begin_retry(self, message_id: int, counted: int) -> RetryVerdict:
        """Count the next attempt if a retry is allowed. `counted`: the attempts so far — the update
        sets `counted + 1`, so a repeat after a commit whose answer was lost counts nothing twice.

        RULE: no retry is placed after the action closed or expired — unless the message is the
        closing bulletin itself (its action is closed by definition).
        """
        now = _now()
        still_open = (
            select(Action.id)
            .where(
                Action.id == Message.action_id,
                Action.status == ActionStatus.open,
                or_(Action.expires_at.is_(None), Action.expires_at > now),
            )
            .exists()
        )
        closing = (
            select(Bulletin.id)
            .where(Bulletin.id == Message.bulletin_id, Bulletin.kind == BulletinKind.closing)
            .exists()
        )
        with self.sessions() as session, session.begin():
            result = session.execute(
                _guarded(message_id)
                .where(Message.attempts.in_((counted, counted + 1)), or_(still_open, closing))
                .values(attempts=counted + 1)
            )
            changed = cast(CursorResult[Any], result).rowcount
            if changed:
                return RetryVerdict.allowed
            ours = session.scalar(
                select(
                    exists().where(
                        Message.id == message_id,
                        Message.status == MessageStatus.sending,
                        Message.final_at.is_(None),
                    )
                )
            )
        return RetryVerdict.closed if ours else RetryVerdict.gone


def _guarded(message_id: int) -> Update:
    return update(Message).where(
        Message.id == message_id, Message.status == MessageStatus.sending, Message.final_at.is_(None)
    )
