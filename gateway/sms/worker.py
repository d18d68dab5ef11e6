"""The SMS channel worker (`burgernet worker sms`): queue → claim → binds → statuses.

The protocol is gateway/outbox.py's: consume ids from the "sms" queue, `claim()` them in SQL
(queued → sending, leased to this worker), commit, ack the queue entries, then send. At most
`max_open` messages are claimed and unfinished at a time.

Per message: the bulletin's text is cut into parts once per bulletin (gateway/sms/encoding.py;
more than SMS_MAX_PARTS → failed with the reason), routed to a bind that is up
(gateway/sms/routing.py; parked while none is) and submitted (gateway/sms/bind.py); the claim
committed its `dispatched_at` already. Outcomes and receipts are written in batches every
`flush_seconds` (gateway/sms/store.py).

Nothing lost: a message is `sending` only while this worker holds its lease; if the worker dies,
`requeue_stale` (run by every SMS worker) returns it to the queue once the lease ran out. Nothing
twice: only messages with `dispatched_at` set can have reached the SMSC; at most those whose
submit_sm_resp was not yet written to the database when the worker died are sent again.

Receipts are acknowledged to the SMSC once written (a receipt lost in a crash leaves the message
`submitted`, which still counts as reached); a single-part MO message only after its effect — an
unsubscription, an SMS tip — is committed, so a crash makes the SMSC deliver it again; each part
of a concatenated MO message as soon as it is stored (gateway/sms/mo.py), the message handled
once complete or after SMS_MO_PART_WAIT_SECONDS.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from gateway import collector
from gateway.errors import brief
from gateway.phone import masked
from gateway.queue import Intake, WorkQueue, keep_up, upkeep
from gateway.queue import worker_id as lease_worker_id  # the name its leases carry
from gateway.queue.base import Plan, oldest_first
from gateway.storage.models import MessageStatus

from . import pdu as P
from .bind import Bind, OutMessage, RateLimit
from .binds import SmsConfig
from .encoding import TextTooLong, check_parts
from .health import BindHealth
from .inbound import BadReceipt, MoOutcome, handle_mo, mo_sender, parse_receipt, receipt_status
from .mo import MoAssembler, MoPart
from .routing import NoRoute, router_from_config
from .store import Batch, Claimed, Failed, ReceiptIn, SetAside, Submitted, claim_sms, write_batch

if TYPE_CHECKING:
    from gateway.config import Settings

log = logging.getLogger(__name__)

CHANNEL = "sms"
# How much a worker holds claimed and not yet written, in seconds of its binds' contracted rate:
# enough to keep sending between two takes, little enough that a newly launched action's first
# messages (planned first at the next take) go out within a second behind any backlog.
LOOKAHEAD_S = 0.25
UNKNOWN_RECEIPT_PATIENCE = timedelta(seconds=10)
# Accepted submits not yet written, at most, in windows: a crash can make at most these (plus the
# window in flight) arrive twice — unless their receipts prove them (see `unanswered`).
UNRECORDED_PER_WINDOW = 10
DISPATCH_SLICE = 50  # claimed messages handed to the binds per turn of the event loop


_now = functools.partial(datetime.now, UTC)  # per PDU: no Python frame


def _judge_stat(stat: str, error: str | None = None) -> tuple[MessageStatus | None, str]:
    """(final status or None, detail) of a receipt's stat."""
    verdict = receipt_status(stat, error)
    if verdict is None:
        return None, stat
    status, detail = verdict
    return status, f"{detail} ({stat})" if detail else "delivered"


class SmsWorker:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        queue: WorkQueue,
        config: SmsConfig,
        *,
        worker_id: str | None = None,
        rate_limits: dict[str, RateLimit] | None = None,
        health: BindHealth | None = None,
        max_parts: int = 6,
        flush_seconds: float = 0.1,
        lease_seconds: float = 60.0,
        retries: int = 3,
        max_open: int | None = None,
        unrecorded_cap: int | None = None,
        unanswered_grace: float = 5.0,
        plan: Plan = oldest_first,
        mo_part_wait: float = 60.0,
    ) -> None:
        self.sessions = sessions
        self.queue = queue
        self.config = config
        self.worker_id = worker_id or lease_worker_id(CHANNEL)
        self.health = health or BindHealth(None, "")
        self.max_parts = max_parts
        self.flush_seconds = flush_seconds
        self.lease_seconds = lease_seconds
        self.router = router_from_config(config)
        rate_limits = rate_limits or {}
        self.binds: dict[str, Bind] = {
            b.name: Bind(b, self, rate_limits.get(b.name), retries=retries) for b in config.binds
        }
        self.max_open = max_open or max(2000, 20 * sum(b.window for b in config.binds))
        self.open: dict[int, Claimed] = {}
        self.parked: deque[Claimed] = deque()
        self.batch = Batch()
        self._templates: dict[tuple[int, str], P.SubmitTemplate | str] = {}
        self._texts: dict[int, str] = {}  # bulletin id → its SMS text (claim_sms reads each once)
        self.intake = Intake(queue, CHANNEL, self.worker_id, plan)
        self._room = asyncio.Event()
        self._flushed = asyncio.Event()
        # Set when enough outcomes wait: accepted submits not yet in the database are what a
        # crash would send twice, so they are written without waiting for the next tick.
        self._flush_now = asyncio.Event()
        self._writing = 0
        self.unrecorded_cap = unrecorded_cap or UNRECORDED_PER_WINDOW * max(b.window for b in config.binds)
        self._stopping = asyncio.Event()
        self.mo_parts = MoAssembler(sessions, handle_mo, self._mo_done, _now, mo_part_wait)
        self.unanswered_grace = unanswered_grace
        # phone digits → unanswered submits waiting for a receipt or their grace to run out
        self.limbo: dict[str, list[tuple[Bind, OutMessage, int, float, bool]]] = {}
        self.proven_by_receipt = 0
        # An unknown receipt is kept this long: its submit may be recorded later, or be the
        # message of a dead worker that comes back once its lease runs out.
        self.receipt_patience = max(
            UNKNOWN_RECEIPT_PATIENCE, timedelta(seconds=lease_seconds + unanswered_grace + 5)
        )
        self.counts = {"submitted": 0, "failed": 0, "delivered": 0, "receipts_unknown": 0, "set_aside": 0}

    # --- running -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, drain_seconds: float = 15.0) -> None:
        """Work until `stop` is set; then finish what is under way (up to `drain_seconds`)."""
        bind_tasks = [asyncio.create_task(b.run(), name=f"bind {b.name}") for b in self.binds.values()]
        helpers = [
            asyncio.create_task(self._flush_loop(), name="sms flush"),
            asyncio.create_task(
                keep_up(self._leases, lambda: list(self.open), self.lease_seconds, "SMS worker"),
                name="sms leases",
            ),
            asyncio.create_task(self._health_loop(), name="sms health"),
            asyncio.create_task(self._parked_loop(), name="sms parked"),
            asyncio.create_task(self.mo_parts.run(), name="sms mo parts"),
        ]
        consumer = asyncio.create_task(self._consume(stop), name="sms consume")
        try:
            await stop.wait()
            await consumer
            try:
                await asyncio.wait_for(self._until_idle(), drain_seconds)
            except TimeoutError:
                log.warning(
                    "SMS worker: stopping with %d message(s) unfinished; their leases return them",
                    len(self.open),
                )
        finally:
            consumer.cancel()
            self._stopping.set()
            await asyncio.gather(consumer, return_exceptions=True)
            for bind in self.binds.values():
                await bind.stop()
            await asyncio.gather(*bind_tasks, return_exceptions=True)
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self._flush()
            await asyncio.to_thread(self.health.publish)

    async def _until_idle(self) -> None:
        while self.open or len(self.batch) or self.limbo:
            self._flushed.clear()
            await self._flushed.wait()

    def _any_up(self) -> bool:
        return any(b.up for b in self.binds.values())

    async def _consume(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            room = self._room_to_take()
            if room <= 0 or not self._any_up():
                self._room.clear()
                try:
                    await asyncio.wait_for(self._room.wait(), LOOKAHEAD_S / 5)
                except TimeoutError:
                    pass
                continue
            try:
                claimed = await asyncio.to_thread(self.intake.take, room, 500, self._claim)
            except Exception as exc:
                # Nothing is lost: a claim that failed left its messages queued (gateway.queue.Intake).
                log.warning("SMS worker: taking messages failed (%s); trying again in 1 s", brief(exc))
                await asyncio.sleep(1)
                continue
            for item in claimed:
                self.open[item.message_id] = item
            # Handed to the binds a slice at a time, the event loop turning in between: one go
            # over 500 kept the binds from reading their responses for milliseconds, and with a
            # window of 100 every such pause is time the SMSC waits for submits.
            for start in range(0, len(claimed), DISPATCH_SLICE):
                if start:
                    await asyncio.sleep(0)
                up = self._up()
                for item in claimed[start : start + DISPATCH_SLICE]:
                    self._dispatch(item, up=up)

    def _room_to_take(self) -> int:
        """How many to take now: the lookahead's worth less what is claimed and not yet written —
        and nothing until half of it is used up, so that a take is worth its round trips. RULE:
        a worker holds no backlog of its own; the order of the actions is decided at the queue."""
        lookahead = 0
        for bind in self.binds.values():
            if bind.up:
                rate = bind.config.rate_per_second
                lookahead += math.ceil(rate * LOOKAHEAD_S) if rate else self.max_open
        lookahead = min(lookahead, self.max_open - len(self.open))
        unwritten = sum(len(b.ready) for b in self.binds.values()) + len(self.parked)
        return lookahead - unwritten if unwritten * 2 <= lookahead else 0

    def _claim(self, message_ids: list[int]) -> list[Claimed]:
        return claim_sms(self.sessions, message_ids, self.worker_id, self._texts)

    def _template(self, item: Claimed, bind: Bind) -> P.SubmitTemplate | str:
        """The submit_sm PDUs of the bulletin's text over `bind` (its sender), built once per
        bulletin and bind; or why the text cannot go."""
        key = (item.bulletin_id, bind.name)
        cached = self._templates.get(key)
        if cached is None:
            try:
                encoded = check_parts(item.text, self.max_parts)
                cached = P.SubmitTemplate.build(encoded.encoding, P.encode_parts(encoded), bind.source)
            except TextTooLong as exc:
                cached = str(exc)
            except ValueError as exc:
                cached = f"text cannot be sent: {exc}"
            if len(self._templates) > 1000:
                self._templates.clear()
            self._templates[key] = cached
        return cached

    def _up(self, avoid: str | None = None) -> list[str]:
        return [name for name, b in self.binds.items() if b.up and name != avoid]

    def _dispatch(self, item: Claimed, avoid: str | None = None, up: list[str] | None = None) -> None:
        """Route and hand to a bind (`up`: the binds that are up, when the caller knows)."""
        up = self._up(avoid) if up is None else up
        try:
            bind = self.binds[self.router.choose(item.phone, up)]
        except NoRoute:
            self.parked.append(item)
            return
        template = self._template(item, bind)
        if isinstance(template, str):
            self._fail(item.message_id, template)
            return
        # RULE: concatenation reference from the message id: two long messages to one phone
        # (alert, update) get different references.
        pdus = template.pdus(item.phone.lstrip("+"), item.message_id % 255 + 1)
        message = OutMessage(item.message_id, item.phone, pdus)
        if item.dispatched_before and len(pdus) == 1 and self.unanswered_grace > 0:
            # Its worker died after dispatching it: the receipt may prove it already went.
            self._hold(bind, message, 0, fresh=True)
        else:
            bind.submit(message)

    async def _parked_loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            for _ in range(len(self.parked)):
                self._dispatch(self.parked.popleft())
            self._limbo_due()

    # --- what the binds report (BindEvents) ----------------------------------------------------

    async def may_write(self) -> None:
        """Wait while too many accepted submits are not in the database yet: those are what a
        crash would send twice, so their number is kept bounded (`unrecorded_cap`)."""
        while self._unrecorded() >= self.unrecorded_cap:
            self._flush_now.set()
            self._flushed.clear()
            await self._flushed.wait()

    def _unrecorded(self) -> int:
        return len(self.batch.submitted) + self._writing

    def submitted(self, bind: Bind, message: OutMessage) -> None:
        if message.message_id is None:
            log.info("SMS bind %s: confirmation to %s submitted", bind.name, masked(message.phone))
            return
        # Every part has its id by now (see Bind._answered, _proven_by_receipt).
        ids = tuple(message.smsc_ids)
        self.batch.add_submitted(Submitted(message.message_id, bind.config.operator, bind.name, ids, _now()))
        # Write once half the cap is waiting: the write finishes before the sender reaches the cap,
        # in batches big enough that receipts arriving meanwhile are folded into their submits.
        if len(self.batch.submitted) * 2 >= self.unrecorded_cap:
            self._flush_now.set()

    def failed(self, bind: Bind, message: OutMessage, reason: str) -> None:
        if message.message_id is None:
            log.warning(
                "SMS bind %s: confirmation to %s not sent: %s", bind.name, masked(message.phone), reason
            )
            return
        log.warning("SMS to %s failed: %s", masked(message.phone), reason)
        self._fail(message.message_id, reason)

    def _fail(self, message_id: int, reason: str) -> None:
        self.batch.failed.append(Failed(message_id, reason, _now()))

    def health_changed(self, bind: Bind, state: str, detail: str) -> None:
        name = bind.name
        self.health.set(name, state, detail)
        self._publish_health()
        if state == "bound":
            self._room.set()

    def down(self, bind: Bind) -> None:
        """Failover: what the bind had not started goes over another bind that is up."""
        others = [name for name, b in self.binds.items() if b.up and name != bind.name]
        if not others:
            return
        moved = bind.take_unstarted()
        for message in moved:
            item = self.open.get(message.message_id) if message.message_id is not None else None
            if item is None:
                bind.submit(message)
            else:
                self._dispatch(item, avoid=bind.name)
        if moved:
            log.warning("SMS bind %s is down: %d message(s) go over another bind", bind.name, len(moved))

    def unanswered(self, bind: Bind, parts: list[tuple[OutMessage, int]]) -> None:
        """Submits a dropped connection left unanswered. The SMSC may have accepted them (its
        responses can die with the connection). A single-part one waits `unanswered_grace`
        seconds of the bind being up: a delivery receipt for an unknown id about the same phone
        proves it was accepted (and gives its SMSC id); without one it goes again."""
        again: list[tuple[OutMessage, int]] = []
        for message, index in parts:
            if self.unanswered_grace > 0 and len(message.pdus) == 1 and message.message_id is not None:
                self._hold(bind, message, index, fresh=False)
            else:
                again.append((message, index))
        if again:
            bind.resend(again)

    def _hold(self, bind: Bind, message: OutMessage, index: int, fresh: bool) -> None:
        deadline = asyncio.get_running_loop().time() + self.unanswered_grace
        self.limbo.setdefault(message.phone.lstrip("+"), []).append((bind, message, index, deadline, fresh))

    def _limbo_due(self) -> None:
        now = asyncio.get_running_loop().time()
        for phone, entries in list(self.limbo.items()):
            keep = []
            for bind, message, index, deadline, fresh in entries:
                if message.done:
                    continue
                if not bind.up:
                    keep.append((bind, message, index, now + self.unanswered_grace, fresh))
                elif now < deadline:
                    keep.append((bind, message, index, deadline, fresh))
                elif fresh:
                    bind.submit(message)  # dispatch recorded again before it is written
                else:
                    bind.resend([(message, index)])
            if keep:
                self.limbo[phone] = keep
            else:
                del self.limbo[phone]

    def _proven_by_receipt(self, receipt: ReceiptIn) -> bool:
        """An unknown receipt about a phone with an unanswered submit in limbo: that submit was
        accepted; record it with the receipt's SMSC id instead of sending it again."""
        entries = self.limbo.get(receipt.recipient)
        if not entries:
            return False
        bind, message, index, _, _ = entries.pop(0)
        if not entries:
            del self.limbo[receipt.recipient]
        if message.done:
            return False
        message.smsc_ids[index] = receipt.smsc_message_id
        message.done = True
        self.proven_by_receipt += 1
        self.submitted(bind, message)
        return True

    def deliver(self, bind: Bind, raw: bytes, respond: Callable[[int], None]) -> None:
        try:
            head = P.read_deliver(raw)
            message = None if head.is_receipt else P.parse_deliver(raw)
        except (ValueError, UnicodeDecodeError, IndexError) as exc:
            log.warning("SMS bind %s: unreadable deliver_sm (%s); refused", bind.name, exc)
            respond(0x65)  # ESME_RX_P_APPN: permanent, do not send it again
            return
        if message is None:
            self._receipt(bind, head, respond)
            return
        sender = mo_sender(message.source.number, int(message.source.ton))
        if sender is None:
            log.warning("SMS bind %s: MO from an unusable sender address ignored", bind.name)
            respond(0)
            return
        text = message.short_message or message.message_payload
        segment = P.concatenation(message)
        if segment is not None and segment[2] > 1:
            reference, part, total = segment
            if not 1 <= part <= total:
                log.warning(
                    "SMS bind %s: MO part %d of %d from %s refused", bind.name, part, total, masked(sender)
                )
                respond(0x65)  # ESME_RX_P_APPN: permanent
                return
            self.mo_parts.received(bind.name, MoPart(sender, reference, total, part, text, _now()), respond)
            return
        asyncio.get_running_loop().create_task(self._mo_received(bind, sender, text, respond))

    def _receipt(self, bind: Bind, head: P.DeliverHead, respond: Callable[[int], None]) -> None:
        # Acknowledged (`respond`) once written: a receipt a crash swallowed is delivered again.
        smsc_id = head.tlvs.get(P.RECEIPTED_MESSAGE_ID, b"").rstrip(b"\0").decode("latin-1")
        state = head.tlvs.get(P.MESSAGE_STATE)
        now = _now()
        operator = bind.config.operator
        if smsc_id and state is not None and int.from_bytes(state, "big") == P.STATE_DELIVERED:
            # The common case, from the TLVs alone (the text's dates are not needed: final_at is
            # when the gateway learned it); mostly folded into its submit.
            ids = (smsc_id,)
            if self.batch.fold(operator, ids, MessageStatus.delivered, "delivered", now, respond):
                return
            entry = ReceiptIn(
                operator,
                smsc_id,
                "DELIVRD",
                MessageStatus.delivered,
                "delivered",
                None,
                now,
                head.source.lstrip("+"),
                respond,
                ids,
            )
        else:
            try:
                receipt = parse_receipt(head.short_message.decode("latin-1"), head.tlvs)
            except BadReceipt as exc:
                respond(0)
                log.warning("SMS bind %s: unreadable receipt ignored: %s", bind.name, str(exc)[:60])
                return
            status, detail = _judge_stat(receipt.stat, receipt.error)
            entry = ReceiptIn(
                operator,
                receipt.smsc_message_id,
                receipt.stat,
                status,
                detail,
                receipt.done_at,
                now,
                head.source.lstrip("+"),
                respond,
                receipt.id_candidates(),
            )
            if self.batch.fold(operator, entry.ids, status, detail, now, respond):
                return
        self.batch.receipts.append(entry)

    async def _mo_received(self, bind: Bind, sender: str, text: str, respond: Callable[[int], None]) -> None:
        try:
            outcome = await asyncio.to_thread(self._handle_mo, sender, text)
        except Exception:
            log.exception("SMS from %s could not be handled; the SMSC will deliver it again", masked(sender))
            respond(0x64)  # ESME_RX_T_APPN: temporary
            return
        respond(0)
        self._mo_done(bind.name, sender, outcome)

    def _mo_done(self, bind_name: str | None, sender: str, outcome: MoOutcome) -> None:
        """An MO message's effect is committed: log it, send its reply (through the bind it came
        in on while that is up)."""
        log.info(
            "SMS from %s: %s%s",
            masked(sender),
            outcome.kind,
            f" ({outcome.unsubscribed} registration(s) ended)" if outcome.kind == "unsubscribed" else "",
        )
        if outcome.reply:
            bind = self.binds.get(bind_name or "") or next(iter(self.binds.values()))
            self._send_service(bind, sender, outcome.reply)

    def _handle_mo(self, sender: str, text: str):
        with self.sessions() as session, session.begin():
            return handle_mo(session, sender, text, _now())

    def _send_service(self, bind: Bind, phone: str, text: str) -> None:
        """A reply that belongs to no action (the STOP confirmation): through the bind the request
        came in on (its transmitter side), logged, not stored as an action's message."""
        try:
            encoded = check_parts(text, self.max_parts)
        except ValueError as exc:
            log.error("confirmation text unusable: %s", exc)
            return
        chunks = P.user_data(P.encode_parts(encoded), 1)
        pdus = P.submit_pdus(encoded.encoding, chunks, bind.source, P.Address.e164(phone), receipt=False)
        message = OutMessage(None, phone, pdus)
        target = bind if bind.up else next((b for b in self.binds.values() if b.up), bind)
        target.submit(message)

    # --- periodic work -------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._flush_now.wait(), self.flush_seconds)
            except TimeoutError:
                pass
            self._flush_now.clear()
            await self._flush()

    async def _flush(self) -> None:
        if not len(self.batch):
            self._flushed.set()
            return
        batch, self.batch = self.batch, Batch()
        self._writing = len(batch.submitted)
        try:
            result = await asyncio.to_thread(write_batch, self.sessions, batch, self.worker_id, _judge_stat)
        except Exception:
            self._writing = 0
            # The database is unreachable (rows it refuses are set aside by write_batch, not
            # raised): keep the batch (nothing is acked to anybody that is not also in memory)
            # and try again at the next flush.
            log.exception("SMS worker: writing %d status(es) failed; retrying", len(batch))
            self.batch.put_back(batch)
            await asyncio.sleep(1)
            return
        self._writing = 0
        for refused in result.set_aside:
            self._set_aside(refused)
        # A receipt is acknowledged once written; one whose submit is not (yet) known only when
        # it is given up — until then a crash makes the SMSC deliver it again (see `unanswered`).
        waiting = {id(r) for r in result.unknown}
        for ack in batch.folded:
            ack(0)
        for receipt in batch.receipts:
            if receipt.ack is not None and id(receipt) not in waiting:
                receipt.ack(0)
        for item in batch.submitted:
            self.open.pop(item.message_id, None)
        for item in batch.failed:
            self.open.pop(item.message_id, None)
        folded_delivered = sum(1 for s in batch.submitted if s.status == MessageStatus.delivered)
        folded_failed = sum(1 for s in batch.submitted if s.status == MessageStatus.failed)
        self.counts["submitted"] += len(batch.submitted)
        self.counts["failed"] += len(batch.failed) + result.failed_by_receipt + folded_failed
        self.counts["delivered"] += result.delivered + folded_delivered
        now = _now()
        proven = self.proven_by_receipt
        for receipt in result.unknown:
            if self._proven_by_receipt(receipt) or now - receipt.received_at < self.receipt_patience:
                self.batch.receipts.append(receipt)
            else:
                if receipt.ack is not None:
                    receipt.ack(0)
                self.counts["receipts_unknown"] += 1
                log.warning(
                    "SMS receipt for unknown SMSC id %s… (operator %s) ignored",
                    receipt.smsc_message_id[:4],
                    receipt.operator,
                )
        if self.proven_by_receipt > proven:
            log.info(
                "SMS: %d unanswered submit(s) proven accepted by their receipt, not sent again",
                self.proven_by_receipt - proven,
            )
        self._room.set()
        self._flushed.set()

    def _set_aside(self, refused: SetAside) -> None:
        """A row the database refused: logged (the number masked), counted, shown in /health."""
        row = refused.row
        if isinstance(row, ReceiptIn):
            what = f"receipt for SMSC id {row.smsc_message_id[:4]}… to {masked(row.recipient)}"
        else:
            item = self.open.get(row.message_id)
            kind = "submit" if isinstance(row, Submitted) else "failure"
            what = (
                f"{kind} of message {row.message_id} to {masked(item.phone) if item else 'an unknown number'}"
            )
        effect = (
            " (the message is recorded submitted, without its receipt map)"
            if refused.written_unmapped
            else ""
        )
        log.error("SMS worker: %s set aside, the database refused it: %s%s", what, refused.reason, effect)
        self.counts["set_aside"] += 1
        self.health.note_set_aside(refused.reason)
        self._publish_health()

    def _publish_health(self) -> None:
        if not self._stopping.is_set():
            asyncio.get_running_loop().create_task(asyncio.to_thread(self.health.publish))

    def _leases(self, holding: list[int]) -> None:
        requeued = upkeep(self.sessions, self.queue, CHANNEL, self.worker_id, self.lease_seconds, holding)
        if requeued.total:
            log.warning(
                "SMS: %d message(s) of a stopped worker queued again; %d of them had been "
                "dispatched and may reach their phone twice",
                requeued.total,
                requeued.dispatched,
            )

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(10)
            try:
                await asyncio.to_thread(self.health.publish)
            except Exception as exc:
                log.warning("SMS worker: publishing the binds' health failed (%s)", brief(exc))


async def run_sms_worker(
    settings: Settings,
    stop: asyncio.Event | None = None,
    worker_id: str | None = None,
    plan: Plan | None = None,
) -> None:
    """`burgernet worker sms`: the worker on the configured database, queue, Redis and binds.
    `plan`: the order of the queue's flows (default: by urgency, SCHEDULE_WEIGHTS)."""
    import redis
    import redis.asyncio

    from gateway.queue import DEFAULT_PREFIX, make_queue
    from gateway.queue.flows import planner
    from gateway.storage.db import make_engine, session_factory

    from .binds import load_sms_config
    from .ratelimit import BindRateLimit

    keep_alive = {
        "enquire_link_seconds": settings.sms_enquire_link_seconds,
        "enquire_link_timeout_seconds": settings.sms_enquire_link_timeout_seconds,
    }
    config = load_sms_config(
        settings.sms_binds,
        settings.sms_binds_file,
        settings.sms_default_bind,
        settings.sms_sender,
        keep_alive,
    )
    engine = make_engine(settings.sqlalchemy_url)
    queue = make_queue(settings.redis_url)
    sync_redis = redis.Redis.from_url(settings.redis_url) if settings.redis_url else None
    async_redis = redis.asyncio.Redis.from_url(settings.redis_url) if settings.redis_url else None
    rate_limits: dict[str, RateLimit] = {}
    if async_redis is not None:
        for bind in config.binds:
            if bind.rate_per_second:
                rate_limits[bind.name] = BindRateLimit(
                    async_redis, bind.name, bind.rate_per_second, DEFAULT_PREFIX
                )
    sessions = session_factory(engine)
    worker = SmsWorker(
        sessions,
        queue,
        config,
        worker_id=worker_id,
        rate_limits=rate_limits,
        health=BindHealth(sync_redis, DEFAULT_PREFIX),
        max_parts=settings.sms_max_parts,
        flush_seconds=settings.sms_flush_ms / 1000,
        lease_seconds=settings.sms_lease_seconds,
        retries=settings.sms_submit_retries,
        unanswered_grace=settings.sms_unanswered_grace_seconds,
        plan=plan or planner(sessions, settings.schedule_weights),
        mo_part_wait=settings.sms_mo_part_wait_seconds,
    )
    if stop is None:  # SIGTERM/SIGINT: stop claiming, finish what is under way
        import signal

        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    collector.settle_after_start_up()
    log.info(
        "SMS worker %s: binds %s",
        worker.worker_id,
        ", ".join(f"{b.name} ({b.host}:{b.port})" for b in config.binds),
    )
    try:
        await worker.run(stop)
    finally:
        queue.close()
        engine.dispose()
        if async_redis is not None:
            await async_redis.aclose()
        if sync_redis is not None:
            sync_redis.close()
