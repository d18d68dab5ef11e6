"""Concatenated MO messages, put together from parts kept in the database (table `mo_part`).

SMSCs deliver the parts of a long MO message as separate deliver_sm PDUs, and many wait for each
part's deliver_sm_resp before sending the next (a window of 1). So a part is acknowledged as soon
as it is durably kept — stored and committed, so a crash loses none — not when its message is
complete; holding part 1's answer back until part 2 arrives would stall such an SMSC until its
response timer ran out.

- RULE: a part is acknowledged once stored; a part already kept (same sender, reference, number
  of parts, part number and text) is acknowledged again and ignored — also one resent after its
  message was handled. Handled parts are kept `KEPT_AFTER_HANDLING` for that.
- RULE: a message is handled (STOP / SMS tip, gateway.sms.inbound.handle_mo) once, when its last
  part is stored; `handled_at` is set in the same transaction as its effect, guarded, so two
  workers (or binds) that both see it complete handle it once.
- RULE: a message still missing parts `wait` seconds after its first part arrived is handled with
  what arrived, marked incomplete (`incomplete_text`); an incomplete message is never a STOP.

A sweep (`MoAssembler.run`) handles what is due: incomplete messages whose wait is over, and
complete ones whose handling a crash or an unreachable database interrupted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, delete, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.errors import brief
from gateway.phone import masked
from gateway.storage.models import MoPart as MoPartRow

from .inbound import MoOutcome

log = logging.getLogger(__name__)

KEPT_AFTER_HANDLING = timedelta(days=1)
ESME_RX_T_APPN = 0x64  # temporary: the SMSC delivers the part again
_row = MoPartRow.__table__.c


@dataclass(frozen=True, slots=True)
class MoPart:
    """One part of a concatenated MO message as it arrived."""

    sender: str  # E.164
    reference: int
    total: int
    part: int  # 1-based
    text: str
    received_at: datetime

    @property
    def group(self) -> Group:
        return Group(self.sender, self.reference, self.total)


@dataclass(frozen=True, slots=True)
class Group:
    """The parts that make one message: same sender, reference and number of parts."""

    sender: str
    reference: int
    total: int

    def where(self):
        return and_(_row.sender == self.sender, _row.reference == self.reference, _row.total == self.total)


# (session, sender, text, now): an MO message's effect, not committed (gateway.sms.inbound.handle_mo)
HandleMo = Callable[[Session, str, str, datetime], MoOutcome]


# --- pure ------------------------------------------------------------------------------------


def assemble(parts: dict[int, str], total: int) -> tuple[str, bool]:
    """(text, complete) of a message from its parts by number."""
    if len(parts) >= total:
        return "".join(parts[i] for i in sorted(parts)), True
    return incomplete_text(parts, total), False


def incomplete_text(parts: dict[int, str], total: int) -> str:
    """What arrived, in order, "[…]" where a part is missing, after a marker naming the gap."""
    missing = [i for i in range(1, total + 1) if i not in parts]
    body = "".join(parts.get(i, "[…]") for i in range(1, total + 1))
    return f"[onvolledig: deel {', '.join(map(str, missing))} van {total} ontbreekt] {body}"


def due(groups: list[tuple[Group, int, datetime]], now: datetime, wait: timedelta) -> list[Group]:
    """Of the open groups (group, parts kept, first part's arrival): those to handle now."""
    return [g for g, kept, first in groups if kept >= g.total or now - first >= wait]


# --- the database edge (no commits: the caller owns the transaction) -------------------------


def keep_part(session: Session, part: MoPart) -> bool:
    """Store a part; False when it was kept already (a duplicate). Does not commit."""
    this_part = and_(part.group.where(), _row.part == part.part)
    found = session.execute(select(_row.text, _row.handled_at).where(this_part)).first()
    if found is not None:
        text, handled_at = found
        if text == part.text:
            return False
        if handled_at is None:  # a part of an open message with another text: the later is kept
            session.execute(
                update(MoPartRow).where(this_part).values(text=part.text, received_at=part.received_at)
            )
            return True
        # The phone reused the reference (it has 256) for a new message: the old one is done.
        session.execute(delete(MoPartRow).where(part.group.where(), _row.handled_at.is_not(None)))
    session.execute(
        insert(MoPartRow).values(
            sender=part.sender,
            reference=part.reference,
            total=part.total,
            part=part.part,
            text=part.text,
            received_at=part.received_at,
        )
    )
    return True


def take_group(session: Session, group: Group, now: datetime, complete_only: bool) -> tuple[str, bool] | None:
    """Mark the group's open parts handled and return (text, complete); None when it is not
    (yet, with `complete_only`) there or another transaction took it first. Does not commit."""
    rows = dict(
        session.execute(select(_row.part, _row.text).where(group.where(), _row.handled_at.is_(None))).all()
    )
    if not rows or (complete_only and len(rows) < group.total):
        return None
    taken = cast(
        "CursorResult[Any]",
        session.execute(
            update(MoPartRow).where(group.where(), _row.handled_at.is_(None)).values(handled_at=now)
        ),
    )
    if taken.rowcount != len(rows):
        return None  # another worker's transaction took (some of) them meanwhile
    return assemble(rows, group.total)


def open_groups(session: Session) -> list[tuple[Group, int, datetime]]:
    """Every group with parts not yet handled: (group, parts kept, first part's arrival)."""
    found = session.execute(
        select(_row.sender, _row.reference, _row.total, func.count(), func.min(_row.received_at))
        .where(_row.handled_at.is_(None))
        .group_by(_row.sender, _row.reference, _row.total)
    )
    return [(Group(sender, reference, total), kept, first) for sender, reference, total, kept, first in found]


def forget_handled(session: Session, before: datetime) -> int:
    """Delete parts handled before `before`; how many. Does not commit."""
    deleted = cast("CursorResult[Any]", session.execute(delete(MoPartRow).where(_row.handled_at < before)))
    return deleted.rowcount


# --- the worker's side -----------------------------------------------------------------------


class MoAssembler:
    """Takes parts from the binds, acknowledges each once kept, handles each message once."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        handle: HandleMo,
        done: Callable[[str | None, str, MoOutcome], None],
        now: Callable[[], datetime],
        wait_seconds: float = 60.0,
    ) -> None:
        self.sessions = sessions
        self.handle = handle
        self.done = done  # (bind name or None, sender, outcome): log it, send the reply
        self.now = now
        self.wait = timedelta(seconds=wait_seconds)
        self.sweep_seconds = max(0.2, min(5.0, wait_seconds / 4))
        self.counts = {"parts": 0, "duplicates": 0, "complete": 0, "incomplete": 0}
        self._tasks: set[asyncio.Task] = set()  # the loop keeps only weak references

    def received(self, bind: str, part: MoPart, respond: Callable[[int], None]) -> None:
        """A part from a bind; `respond` sends its deliver_sm_resp."""
        task = asyncio.get_running_loop().create_task(self._receive(bind, part, respond))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _receive(self, bind: str, part: MoPart, respond: Callable[[int], None]) -> None:
        try:
            new = await asyncio.to_thread(self._keep, part)
        except Exception as exc:
            log.warning(
                "SMS part %d/%d from %s could not be stored (%s); the SMSC will send it again",
                part.part,
                part.total,
                masked(part.sender),
                brief(exc),
            )
            respond(ESME_RX_T_APPN)
            return
        respond(0)
        if not new:
            self.counts["duplicates"] += 1
            log.info(
                "SMS part %d/%d from %s received again: acknowledged, ignored",
                part.part,
                part.total,
                masked(part.sender),
            )
            return
        self.counts["parts"] += 1
        await self._handle(bind, part.group, complete_only=True)

    def _keep(self, part: MoPart) -> bool:
        with self.sessions() as session, session.begin():
            return keep_part(session, part)

    async def _handle(self, bind: str | None, group: Group, complete_only: bool) -> None:
        try:
            handled = await asyncio.to_thread(self._take_and_handle, group, complete_only)
        except Exception as exc:
            log.warning(
                "SMS from %s could not be handled yet (%s); trying again", masked(group.sender), brief(exc)
            )
            return
        if handled is not None:
            complete, outcome = handled
            self.counts["complete" if complete else "incomplete"] += 1
            self.done(bind, group.sender, outcome)

    def _take_and_handle(self, group: Group, complete_only: bool) -> tuple[bool, MoOutcome] | None:
        now = self.now()
        with self.sessions() as session, session.begin():
            taken = take_group(session, group, now, complete_only)
            if taken is None:
                return None
            text, complete = taken
            if not complete:
                log.warning(
                    "SMS from %s incomplete after %.0f s: handled with what arrived",
                    masked(group.sender),
                    self.wait.total_seconds(),
                )
            return complete, self.handle(session, group.sender, text, now)

    async def run(self) -> None:
        """Handle what is due, every `sweep_seconds`, until cancelled."""
        while True:
            try:
                await self.sweep()
            except Exception as exc:
                log.warning("SMS worker: looking for MO parts due failed (%s)", brief(exc))
            await asyncio.sleep(self.sweep_seconds)

    async def sweep(self) -> None:
        groups = await asyncio.to_thread(self._due)
        for group in groups:
            await self._handle(None, group, complete_only=False)

    def _due(self) -> list[Group]:
        now = self.now()
        with self.sessions() as session, session.begin():
            forget_handled(session, now - KEPT_AFTER_HANDLING)
            return due(open_groups(session), now, self.wait)
