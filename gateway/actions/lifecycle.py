"""The action lifecycle: draft → open (launched) → closed, with the messages each step queues.

Every function works inside the caller's session and never commits, so a route can combine
steps in one transaction; the ids they return are handed to the work queue after the commit
(gateway/actions/fanout.py). State changes are guarded in SQL (`WHERE status = …`) so that two
concurrent requests cannot both launch or both close an action.

A launch creates the messages of its first page of recipients only (in phone-number order,
decided from `FAN_OUT_FIRST` registrations); the rest come in growing pages, each targeted and
created in its own transaction (`fan_out_step`), while the first are being sent.
`complete_fan_outs` finishes an alert whose launching process died midway.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.actions import wording
from gateway.config import Settings
from gateway.errors import Conflict, NotFound
from gateway.sms.encoding import EncodedText, split_sms
from gateway.storage import postgresql
from gateway.storage.db import rowcount
from gateway.storage.models import (
    REACHED_STATUSES,
    Action,
    ActionStatus,
    Bulletin,
    BulletinKind,
    Channel,
    Message,
    MessageStatus,
    Outcome,
    WaitingRecipient,
    utcnow,
)
from gateway.targeting import Page, Recipient, find_recipients, recipients_page

CODE_DIGITS = 4
# A code looks like the example in every message ("actiecode 4821"): four digits, no leading 0.
_CODE_LOW, _CODE_HIGH = 10 ** (CODE_DIGITS - 1), 10**CODE_DIGITS - 1
_CODE_TRIES = 50
# What a draft shows where the code will go: same length, so the same SMS size.
CODE_PLACEHOLDER = "#" * CODE_DIGITS
_INSERT_CHUNK = 5_000
# The registrations a launch targets itself, so that the workers start sending at once (100,000
# recipients in one transaction kept every SMS waiting ~2 s; reading the whole area first, another
# 0.2-0.5 s: bench.contention, bench.sms). Each later page of the fan-out is twice the one before,
# up to FAN_OUT_LARGEST: a page's read scans the area's candidates again (~0.15 s at 100,000,
# whatever the page's size), while the pages before it keep the workers busy; and each page is
# one transaction that a close waits for.
FAN_OUT_FIRST = 2_000
FAN_OUT_LARGEST = 32_000

NewMessage = tuple[str, int | None, str]  # (phone, participant id, channel) of a message to create


@dataclass
class Queued:
    """What one step put on its way: new message ids per channel, for the work queue."""

    action_id: int
    bulletin_id: int | None = None
    ids_by_channel: dict[str, list[int]] = field(default_factory=dict)
    # A launch's fan-out goes on with the numbers after this one (fan_out_step); None when the
    # alert's messages are all created.
    fan_out_after: str | None = None

    @property
    def count(self) -> int:
        return sum(len(ids) for ids in self.ids_by_channel.values())


@dataclass
class Preview:
    recipients: dict[str, int]
    sms: EncodedText
    sms_text: str
    spoken_text: str


def get_action(session: Session, action_id: int, *, for_update: bool = False, fresh: bool = False) -> Action:
    """The action, or NotFound; `fresh` reloads it after a guarded UPDATE changed the row."""
    stmt = select(Action).where(Action.id == action_id)
    if for_update:
        stmt = stmt.with_for_update()
    if fresh or for_update:
        stmt = stmt.execution_options(populate_existing=True)
    action = session.scalars(stmt).one_or_none()
    if action is None:
        raise NotFound(f"action {action_id} does not exist", action_id=action_id)
    return action


def recipients(session: Session, action: Action, now: datetime) -> list[Recipient]:
    return find_recipients(
        session, action.lat, action.lon, action.radius_m, action.channels, now, action.polygon
    )


def preview(session: Session, action: Action, now: datetime, settings: Settings) -> Preview:
    """What launching now would do: recipients per channel and the texts as they will go out."""
    counts = {c.value: 0 for c in action.channels}
    for r in recipients(session, action, now):
        counts[r.channel.value] += 1
    code = action.action_code or CODE_PLACEHOLDER
    sms_text = wording.alert_sms(action.description, code, settings.tip_line)
    return Preview(counts, split_sms(sms_text), sms_text, preview_spoken(action))


def preview_spoken(action: Action) -> str:
    """The spoken alert as launching would make it (the code a placeholder while a draft)."""
    return wording.alert_spoken(action.description, action.action_code or CODE_PLACEHOLDER)


def launch(session: Session, action_id: int, now: datetime, settings: Settings) -> Queued:
    """Open a draft: give it an action code, target it and queue one alert per phone number —
    those of its first page of recipients; `Queued.fan_out_after` says where `fan_out_step` goes on."""
    code = _open_with_code(session, action_id, now, settings)
    action = get_action(session, action_id, fresh=True)
    page = _alert_page(session, action, now, None, FAN_OUT_FIRST)
    bulletin = _bulletin(
        session,
        action,
        BulletinKind.alert,
        0,
        wording.alert_sms(action.description, code, settings.tip_line),
        wording.alert_spoken(action.description, code),
        complete=page.last_phone is None,
    )
    queued = _insert_messages(session, bulletin, _new_messages(page.recipients), now)
    queued.fan_out_after = page.last_phone
    return queued


def fan_out_step(
    session: Session, bulletin_id: int, after: str, now: datetime, *, size: int
) -> Queued | None:
    """Target and create the next page of a launch's alerts, the numbers after `after` decided from
    `size` registrations (the caller commits, then publishes); the alert's `fanned_out_at` is set
    with its last page.

    None when the fan-out is over without them: the action was closed meanwhile (no alert goes
    out after its closing), or `complete_fan_outs` finished it."""
    bulletin = session.scalars(
        select(Bulletin).where(Bulletin.id == bulletin_id, Bulletin.fanned_out_at.is_(None)).with_for_update()
    ).one_or_none()
    if bulletin is None:
        return None
    # Held until the commit: a close waits for this chunk, and the next chunk sees it closed.
    action = session.scalars(
        select(Action)
        .where(Action.id == bulletin.action_id, Action.status == ActionStatus.open)
        .with_for_update(read=True)
    ).one_or_none()
    if action is None:
        bulletin.fanned_out_at = now
        return None
    # Targeted as at the launch (pauses, time windows); the registrations are read as they are now.
    page = _alert_page(session, action, action.launched_at or bulletin.created_at, after, size)
    if page.last_phone is None:
        bulletin.fanned_out_at = now
    queued = _insert_messages(session, bulletin, _new_messages(page.recipients), now)
    queued.fan_out_after = page.last_phone
    return queued


def _alert_page(session: Session, action: Action, at: datetime, after: str | None, size: int) -> Page:
    return recipients_page(
        session,
        action.lat,
        action.lon,
        action.radius_m,
        action.channels,
        at,
        action.polygon,
        after=after,
        size=size,
    )


def _new_messages(recipients: Iterable[Recipient]) -> list[NewMessage]:
    return [(r.phone, r.participant_id, r.channel) for r in recipients]


def complete_fan_outs(session: Session, now: datetime, cutoff: datetime) -> list[Queued]:
    """Finish the alerts a dying process left half created (`fanned_out_at` NULL since before
    `cutoff`): target each again as at its launch and create the messages still missing. These
    are created unpublished (`enqueued_at` NULL), each to be marked when published."""
    created = []
    stalled = session.scalars(
        select(Bulletin)
        .where(
            Bulletin.kind == BulletinKind.alert,
            Bulletin.fanned_out_at.is_(None),
            Bulletin.created_at < cutoff,
            # A municipality's message still waiting for windows is not stalled (actions/messages.py).
            ~exists().where(WaitingRecipient.bulletin_id == Bulletin.id),
        )
        .order_by(Bulletin.id)
        .with_for_update()
    ).all()
    for bulletin in stalled:
        action = get_action(session, bulletin.action_id, for_update=True)
        if action.status == ActionStatus.open:
            have = set(session.scalars(select(Message.phone).where(Message.bulletin_id == bulletin.id)))
            missing = _new_messages(
                r
                for r in recipients(session, action, action.launched_at or bulletin.created_at)
                if r.phone not in have
            )
            created.append(_insert_messages(session, bulletin, missing, now, published_with_bulletin=False))
        bulletin.fanned_out_at = now
    return created


def _open_with_code(session: Session, action_id: int, now: datetime, settings: Settings) -> str:
    """The draft → open transition, atomic, with a code unique among open actions."""
    for _ in range(_CODE_TRIES):
        code = str(_CODE_LOW + secrets.randbelow(_CODE_HIGH - _CODE_LOW + 1))
        try:
            with session.begin_nested():
                changed = rowcount(
                    session.execute(
                        update(Action)
                        .where(Action.id == action_id, Action.status == ActionStatus.draft)
                        .values(
                            status=ActionStatus.open,
                            action_code=code,
                            launched_at=now,
                            expires_at=now + timedelta(minutes=settings.action_expiry_minutes),
                        )
                    )
                )
        except IntegrityError:
            continue  # RULE: action codes are unique among open actions — draw again
        if changed == 1:
            return code
        action = get_action(session, action_id, fresh=True)
        raise Conflict(
            f"action {action_id} is {action.status.value}, only a draft can be launched",
            status=action.status.value,
        )
    raise Conflict("no free action code; too many open actions")


def send_update(session: Session, action_id: int, text: str, now: datetime, settings: Settings) -> Queued:
    """A follow-up to everyone the alert went to, on the channel the alert used."""
    action = get_action(session, action_id, for_update=True)
    if action.status != ActionStatus.open:
        raise Conflict(f"action {action_id} is {action.status.value}; updates go to open actions only")
    assert action.action_code is not None  # set when it opened
    seq = (
        session.scalar(
            select(func.max(Bulletin.seq)).where(
                Bulletin.action_id == action.id, Bulletin.kind == BulletinKind.update
            )
        )
        or 0
    ) + 1
    code = action.action_code
    alert_done = (
        session.scalar(
            select(func.count())
            .select_from(Bulletin)
            .where(
                Bulletin.action_id == action.id,
                Bulletin.kind == BulletinKind.alert,
                Bulletin.fanned_out_at.is_(None),
            )
        )
        == 0
    )
    if not alert_done:
        # It goes to everyone the alert went to: wait until the alert has all of them.
        raise Conflict(
            f"action {action_id}: the alert is still being queued for its recipients; "
            "send the update in a few seconds"
        )
    bulletin = _bulletin(
        session,
        action,
        BulletinKind.update,
        seq,
        wording.update_sms(text, code, settings.tip_line),
        wording.update_spoken(text, code),
    )
    alert = (
        select(Message.phone, Message.participant_id, Message.channel)
        .join(Bulletin)
        .where(Bulletin.action_id == action.id, Bulletin.kind == BulletinKind.alert)
    )
    return _insert_messages(session, bulletin, session.execute(alert).all(), now)


def close(
    session: Session,
    action_id: int,
    now: datetime,
    *,
    outcome: Outcome | None,
    outcome_detail: str | None = None,
    note: str | None = None,
    expired: bool = False,
) -> Queued:
    """Close an open action: stop what has not gone out, and queue one closing message per
    number that was reached."""
    changed = rowcount(
        session.execute(
            update(Action)
            .where(Action.id == action_id, Action.status == ActionStatus.open)
            .values(
                status=ActionStatus.closed,
                closed_at=now,
                expired=expired,
                outcome=outcome,
                outcome_detail=outcome_detail,
                outcome_note=note,
            )
        )
    )
    action = get_action(session, action_id, fresh=True)
    if changed != 1:
        raise Conflict(
            f"action {action_id} is {action.status.value}; only an open action can be closed",
            status=action.status.value,
        )
    # Alerts still waiting are pointless (even harmful: people searching for a child who was
    # found) once the action is closed.
    session.execute(
        update(Message)
        .where(Message.action_id == action.id, Message.status == MessageStatus.queued)
        .values(status=MessageStatus.cancelled, detail="action closed before sending", final_at=now)
    )
    if action.municipality_id is not None:
        # A municipality's message: nobody still waiting for a window gets it, and it has no
        # closing message — there was nothing to look out for (gateway/actions/messages.py).
        alerts = select(Bulletin.id).where(
            Bulletin.action_id == action.id, Bulletin.kind == BulletinKind.alert
        )
        session.execute(delete(WaitingRecipient).where(WaitingRecipient.bulletin_id.in_(alerts)))
        session.execute(
            update(Bulletin)
            .where(Bulletin.id.in_(alerts), Bulletin.fanned_out_at.is_(None))
            .values(fanned_out_at=now)
            .execution_options(synchronize_session=False)
        )
        return Queued(action.id)
    body = wording.closing_body(outcome, outcome_detail, note)
    assert action.action_code is not None  # it was open
    bulletin = _bulletin(
        session,
        action,
        BulletinKind.closing,
        0,
        wording.closing_sms(action.action_code, body),
        wording.closing_spoken(body),
    )
    # RULE: the closing message goes once to every number reached. A message still `sending`
    # is counted as reached: it was in flight when the action closed.
    reached = (
        select(Message.phone, func.min(Message.participant_id), func.min(Message.channel))
        .where(
            Message.action_id == action.id,
            Message.bulletin_id != bulletin.id,
            Message.status.in_([*REACHED_STATUSES, MessageStatus.sending]),
        )
        .group_by(Message.phone)
    )
    return _insert_messages(session, bulletin, session.execute(reached).all(), now)


def expire_due(session: Session, now: datetime) -> list[Queued]:
    """Close, without an outcome, every open action whose time has run out."""
    due = session.scalars(
        select(Action.id)
        .where(Action.status == ActionStatus.open, Action.expires_at <= now)
        .order_by(Action.id)
    ).all()
    return [close(session, action_id, now, outcome=None, expired=True) for action_id in due]


def _bulletin(
    session: Session,
    action: Action,
    kind: BulletinKind,
    seq: int,
    sms: str,
    spoken: str,
    *,
    complete: bool = True,
) -> Bulletin:
    """A new bulletin; `complete`: its messages are all created in this transaction."""
    bulletin = Bulletin(
        action_id=action.id,
        kind=kind,
        seq=seq,
        sms_text=sms,
        spoken_text=spoken,
        fanned_out_at=utcnow() if complete else None,
    )
    session.add(bulletin)
    session.flush()
    return bulletin


def _insert_messages(
    session: Session,
    bulletin: Bulletin,
    rows: Sequence[NewMessage],
    now: datetime,
    *,
    published_with_bulletin: bool = True,
) -> Queued:
    """Queue the bulletin to each (phone, participant id, channel). Created `enqueued_at`: the
    bulletin's `published_at` confirms the publish for all of them (gateway.queue.publish_messages);
    without `published_with_bulletin` NULL, each confirmed by its own publish."""
    return _insert(session, bulletin, rows, now, now if published_with_bulletin else None)


def _insert(
    session: Session, bulletin: Bulletin, rows: Sequence[NewMessage], now: datetime, enqueued: datetime | None
) -> Queued:
    # In phone order: both indexes on the phone number are then filled at their right edge, not at
    # random pages (PostgreSQL: ~a third less time for 100,000 rows).
    rows = sorted(rows, key=lambda row: row[0])
    if postgresql.is_postgresql(session):
        created = postgresql.insert_messages(session, bulletin.id, bulletin.action_id, rows, now, enqueued)
        postgresql.refresh_statistics_after_growth(session, "message", len(rows))
    else:
        values = [
            {
                "bulletin_id": bulletin.id,
                "action_id": bulletin.action_id,
                "phone": phone,
                "participant_id": pid,
                "channel": Channel(channel),
                "status": MessageStatus.queued,
                "attempts": 0,
                "created_at": now,
                "enqueued_at": enqueued,
            }
            for phone, pid, channel in rows
        ]
        statement = insert(Message).returning(Message.id, Message.channel, sort_by_parameter_order=True)
        created = [
            (mid, channel.value)
            for start in range(0, len(values), _INSERT_CHUNK)
            for mid, channel in session.execute(statement, values[start : start + _INSERT_CHUNK])
        ]
    ids: dict[str, list[int]] = defaultdict(list)
    for mid, channel in sorted(created):
        ids[channel].append(mid)
    return Queued(bulletin.action_id, bulletin.id, dict(ids))
