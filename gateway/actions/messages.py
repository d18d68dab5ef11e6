"""A municipality's own messages: not time-critical, so each waits for its recipient's window.

A police action skips an address outside its receive windows (a burglar on the run does not
wait). A municipality's message (prevention, a neighbourhood inquiry) is worth as much tomorrow
morning, so its alert goes to everyone in the area, each when her first window opens:

- the launch targets the area once, ignoring the windows (`targeting.find_waiting`), and writes
  every recipient with her due time into `waiting_recipient`, in the launch's transaction;
- `release_due` (the launch itself, then a housekeeping job every RELEASE_SECONDS) moves the due
  ones into messages of the alert, published on their own (`enqueued_at`), at routine urgency;
- while anyone waits the alert is not fanned out (`fanned_out_at` NULL), so it is not settled and
  the interrupted-launch repair leaves it alone (it has waiting rows); the last release sets it.
- a closed (or expired) message releases nobody: its waiting rows go. It expires after
  MESSAGE_EXPIRY (a week of windows and a day), and has no closing message.

The due time is decided at the launch: a participant who changes her windows meanwhile gets
the message at the time her old windows gave.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, exists, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.actions import lifecycle, wording
from gateway.actions.fanout import commit_and_publish
from gateway.config import Settings
from gateway.errors import Conflict
from gateway.queue import WorkQueue
from gateway.storage.models import (
    Action,
    ActionStatus,
    Bulletin,
    BulletinKind,
    Channel,
    Municipality,
    WaitingRecipient,
)
from gateway.targeting import find_waiting

MESSAGE_EXPIRY = timedelta(days=8)
RELEASE_SECONDS = 30.0  # how often waiting recipients are looked at: a window opens on the minute
_RELEASE_CHUNK = 10_000


def texts(session: Session, action: Action, tip_line: str) -> tuple[str, str]:
    """The SMS and spoken text of a municipality's message (the code a placeholder while a draft)."""
    municipality = session.get(Municipality, action.municipality_id)
    name = municipality.name if municipality is not None else "?"
    code = (action.action_code or lifecycle.CODE_PLACEHOLDER) if action.tip_line else None
    return (
        wording.message_sms(action.description, name, code, tip_line),
        wording.message_spoken(action.description, name, code),
    )


def waiting_counts(session: Session, action: Action, now: datetime) -> tuple[dict[str, int], int]:
    """Recipients per channel if launched now, and how many of them would wait for a window."""
    found = find_waiting(
        session, action.lat, action.lon, action.radius_m, action.channels, now, action.polygon
    )
    counts = {c.value: 0 for c in action.channels}
    for recipient, _due in found:
        counts[recipient.channel.value] += 1
    return counts, sum(due > now for _r, due in found)


def launch(session: Session, action_id: int, now: datetime, settings: Settings) -> lifecycle.Queued:
    """Open a municipality's draft message: everyone in its area waits for her window; those in
    one now get their message at once (the caller commits and publishes)."""
    action = lifecycle.get_action(session, action_id, for_update=True)
    if action.municipality_id is None:
        raise Conflict(f"action {action_id} is a police action; launch it as an action")
    if action.status != ActionStatus.draft:
        raise Conflict(
            f"message {action_id} is {action.status.value}, only a draft can be sent",
            status=action.status.value,
        )
    if action.tip_line:  # a code, unique among open actions, for the tips it asks for
        lifecycle._open_with_code(session, action_id, now, settings)
    else:
        action.status, action.launched_at = ActionStatus.open, now
    action = lifecycle.get_action(session, action_id, fresh=True)
    action.expires_at = now + MESSAGE_EXPIRY
    sms, spoken = texts(session, action, settings.tip_line)
    alert = lifecycle._bulletin(session, action, BulletinKind.alert, 0, sms, spoken, complete=False)
    alert.published_at = now  # each released message is published (and marked) on its own
    found = find_waiting(
        session, action.lat, action.lon, action.radius_m, action.channels, now, action.polygon
    )
    if found:
        session.execute(
            insert(WaitingRecipient),
            [
                {
                    "bulletin_id": alert.id,
                    "phone": r.phone,
                    "participant_id": r.participant_id,
                    "channel": r.channel.value,
                    "due_at": due,
                }
                for r, due in found
            ],
        )
    released = _release(session, alert, now)
    return released or lifecycle.Queued(action_id)


def release_due(session: Session, now: datetime) -> list[lifecycle.Queued]:
    """Create the messages of every waiting recipient whose window has opened (the caller
    commits, then publishes each)."""
    due = session.scalars(
        select(Bulletin)
        .where(exists().where(WaitingRecipient.bulletin_id == Bulletin.id, WaitingRecipient.due_at <= now))
        .order_by(Bulletin.id)
        .with_for_update()
    ).all()
    return [q for q in (_release(session, b, now) for b in due) if q is not None]


def release_waiting(sessions: sessionmaker[Session], queue: WorkQueue, now: datetime | None = None) -> int:
    """The housekeeping job: release the due recipients, commit, publish; returns how many."""
    now = now or datetime.now(UTC)
    released = 0
    with sessions() as session:
        for queued in release_due(session, now):  # the first commits them all
            released += sum(commit_and_publish(session, sessions, queue, queued).values())
        session.commit()
    return released


def _release(session: Session, alert: Bulletin, now: datetime) -> lifecycle.Queued | None:
    action = lifecycle.get_action(session, alert.action_id)
    waiting = WaitingRecipient
    if action.status != ActionStatus.open:  # RULE: no alert goes out after the action's closing
        session.execute(delete(WaitingRecipient).where(WaitingRecipient.bulletin_id == alert.id))
        alert.fanned_out_at = alert.fanned_out_at or now
        return None
    rows = session.execute(
        select(waiting.phone, waiting.participant_id, waiting.channel)
        .where(waiting.bulletin_id == alert.id, waiting.due_at <= now)
        .order_by(waiting.phone)
        .limit(_RELEASE_CHUNK)
    ).all()
    if rows:
        session.execute(
            delete(WaitingRecipient).where(
                WaitingRecipient.bulletin_id == alert.id, WaitingRecipient.phone.in_([r[0] for r in rows])
            )
        )
    left = session.scalar(select(func.count()).select_from(waiting).where(waiting.bulletin_id == alert.id))
    if not left:
        alert.fanned_out_at = now
    if not rows:
        return None
    queued = lifecycle._insert_messages(
        session, alert, [(p, pid, Channel(c).value) for p, pid, c in rows], now, published_with_bulletin=False
    )
    queued.bulletin_id = None  # published message by message (publish_messages marks each)
    return queued


def waiting_by_action(session: Session, action_ids: list[int]) -> dict[int, int]:
    """How many recipients still wait for a window, per action."""
    rows = session.execute(
        select(Bulletin.action_id, func.count())
        .join(WaitingRecipient, WaitingRecipient.bulletin_id == Bulletin.id)
        .where(Bulletin.action_id.in_(action_ids))
        .group_by(Bulletin.action_id)
    )
    counts: dict[int, int] = defaultdict(int)
    for action_id, n in rows:
        counts[action_id] = n
    return dict(counts)
