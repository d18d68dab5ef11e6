"""MO messages (STOP, SMS tips) as they arrive over the binds, handled once each.

A single-part message is acknowledged to the SMSC only after its effect is committed, so a crash
makes the SMSC deliver it again. Each part of a concatenated message is acknowledged as soon as it
is stored, the message handled once complete or after its wait (gateway/sms/mo.py). A reply (the
STOP confirmation) goes back through `reply`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from gateway.phone import masked
from gateway.storage.models import utcnow

from . import pdu as P
from .inbound import MoKind, MoOutcome, handle_mo, mo_sender
from .mo import MoAssembler, MoPart

log = logging.getLogger(__name__)

ESME_RX_T_APPN = 0x64  # temporary: the SMSC delivers it again
ESME_RX_P_APPN = 0x65  # permanent: the SMSC must not deliver it again


class MoInbox:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        reply: Callable[[str | None, str, str], None],
        part_wait: float = 60.0,
    ) -> None:
        self.sessions = sessions
        self.reply = reply  # (bind name or None, phone, text): sends a reply that belongs to no action
        self.parts = MoAssembler(sessions, handle_mo, self._done, utcnow, part_wait)
        self._tasks: set[asyncio.Task] = set()  # the event loop keeps only weak references

    async def run(self) -> None:
        """Handle the concatenated messages that are due (gateway/sms/mo.py), until cancelled."""
        await self.parts.run()

    def received(self, bind: str, message: P.Deliver, respond: Callable[[int], None]) -> None:
        """An MO deliver_sm (not a receipt) from `bind`; `respond` sends its deliver_sm_resp."""
        sender = mo_sender(message.source, message.source_ton)
        if sender is None:
            log.warning("SMS bind %s: MO from an unusable sender address ignored", bind)
            respond(0)
            return
        text = message.text()
        segment = message.concatenation()
        if segment is not None and segment[2] > 1:
            reference, part, total = segment
            if not 1 <= part <= total:
                log.warning(
                    "SMS bind %s: MO part %d of %d from %s refused", bind, part, total, masked(sender)
                )
                respond(ESME_RX_P_APPN)
                return
            self.parts.received(bind, MoPart(sender, reference, total, part, text, utcnow()), respond)
            return
        task = asyncio.get_running_loop().create_task(self._single(bind, sender, text, respond))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _single(self, bind: str, sender: str, text: str, respond: Callable[[int], None]) -> None:
        try:
            outcome = await asyncio.to_thread(self._handle, sender, text)
        except Exception:
            log.exception("SMS from %s could not be handled; the SMSC will deliver it again", masked(sender))
            respond(ESME_RX_T_APPN)
            return
        respond(0)
        self._done(bind, sender, outcome)

    def _handle(self, sender: str, text: str) -> MoOutcome:
        with self.sessions() as session, session.begin():
            return handle_mo(session, sender, text, utcnow())

    def _done(self, bind: str | None, sender: str, outcome: MoOutcome) -> None:
        """An MO message's effect is committed: log it, send its reply."""
        ended = (
            f" ({outcome.unsubscribed} registration(s) ended)" if outcome.kind is MoKind.unsubscribed else ""
        )
        log.info("SMS from %s: %s%s", masked(sender), outcome.kind, ended)
        if outcome.reply:
            self.reply(bind, sender, outcome.reply)
