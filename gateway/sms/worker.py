"""The SMS channel worker (`burgernet worker sms`): queue → claim → binds → statuses.

The worker wires its parts and speaks for them to the binds (`BindEvents`):

- intake (gateway/sms/intake.py): takes messages from the "sms" queue as the binds have room,
  claims them (leased to this worker, `dispatched_at` committed) — at most `max_open` claimed and
  unfinished at a time;
- dispatcher (gateway/sms/dispatch.py): each message's PDUs to a bind that is up, parked while
  none is, failover when a bind goes down;
- binds (gateway/sms/bind.py): window, rate, retries, reconnects;
- limbo (gateway/sms/limbo.py): submits a dropped connection or a dead worker left unanswered,
  held until a receipt proves them or their grace runs out;
- receipts (gateway/sms/receipts.py) and the MO inbox (gateway/sms/inbox.py): what comes back;
- outcome writer (gateway/sms/outcomes.py): submits, failures and receipts written in batches.

Nothing lost: a message is `sending` only while this worker holds its lease; if the worker dies,
`requeue_stale` (run by every SMS worker) returns it to the queue once the lease ran out. Nothing
twice: only messages with `dispatched_at` set can have reached the SMSC; at most those whose
submit_sm_resp was not yet written to the database when the worker died are sent again.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from gateway import collector, metrics
from gateway.errors import brief
from gateway.phone import masked
from gateway.queue import WorkQueue, keep_up, upkeep
from gateway.queue import worker_id as lease_worker_id  # the name its leases carry
from gateway.queue.base import Plan, oldest_first
from gateway.storage.models import utcnow

from . import pdu as P
from .bind import Bind
from .binds import SmsConfig
from .dispatch import Dispatcher
from .health import BindHealth, BindState
from .inbound import BadReceipt
from .inbox import ESME_RX_P_APPN, MoInbox
from .intake import CHANNEL, SmsIntake
from .limbo import Limbo
from .outcomes import Counts, OutcomeWriter
from .receipts import receipt_in
from .routing import router_from_config
from .sending import OutMessage, RateLimit
from .store import Claimed, ReceiptIn, SetAside, Submitted

if TYPE_CHECKING:
    from gateway.config import Settings

log = logging.getLogger(__name__)

UNKNOWN_RECEIPT_PATIENCE = timedelta(seconds=10)
GIL_SWITCH_SECONDS = 0.0005  # see run_sms_worker
# Accepted submits not yet written, at most, in windows: a crash can make at most these (plus the
# window in flight) arrive twice — unless their receipts prove them (see `unanswered`).
UNRECORDED_PER_WINDOW = 10
HEALTH_SECONDS = 10
PARKED_SECONDS = 0.5


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
        self.worker_id = worker_id or lease_worker_id(CHANNEL)
        self.health = health or BindHealth(None, "")
        self.lease_seconds = lease_seconds
        rate_limits = rate_limits or {}
        self.binds: dict[str, Bind] = {
            b.name: Bind(b, self, rate_limits.get(b.name), retries=retries) for b in config.binds
        }
        self.open: dict[int, Claimed] = {}  # claimed and unfinished, by message id
        self.limbo = Limbo(unanswered_grace)
        self.writer = OutcomeWriter(
            sessions,
            self.worker_id,
            self.open,
            unrecorded_cap=unrecorded_cap or UNRECORDED_PER_WINDOW * max(b.window for b in config.binds),
            flush_seconds=flush_seconds,
            # An unknown receipt is kept this long: its submit may be recorded later, or be the
            # message of a dead worker that comes back once its lease runs out.
            receipt_patience=max(
                UNKNOWN_RECEIPT_PATIENCE, timedelta(seconds=lease_seconds + unanswered_grace + 5)
            ),
            prove=self._proven_by_receipt,
            set_aside=self._set_aside,
            written=self._written,
        )
        self.dispatcher = Dispatcher(
            self.binds, router_from_config(config), self.open, self.limbo, self.writer.failed, max_parts
        )
        self.intake = SmsIntake(
            sessions,
            queue,
            self.worker_id,
            plan,
            self.binds,
            self.dispatcher,
            self.open,
            max_open or max(2000, 20 * sum(b.window for b in config.binds)),
        )
        self.inbox = MoInbox(sessions, self.dispatcher.send_service, mo_part_wait)
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()  # health publications under way

    @property
    def counts(self) -> Counts:
        return self.writer.counts

    # --- running -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, drain_seconds: float = 15.0) -> None:
        """Work until `stop` is set; then finish what is under way (up to `drain_seconds`)."""
        bind_tasks = [asyncio.create_task(b.run(), name=f"bind {b.name}") for b in self.binds.values()]
        helpers = [
            asyncio.create_task(self.writer.run(), name="sms outcomes"),
            asyncio.create_task(
                keep_up(self._leases, lambda: list(self.open), self.lease_seconds, "SMS worker"),
                name="sms leases",
            ),
            asyncio.create_task(self._health_loop(), name="sms health"),
            asyncio.create_task(self._parked_loop(), name="sms parked"),
            asyncio.create_task(self.inbox.run(), name="sms mo parts"),
        ]
        consumer = asyncio.create_task(self.intake.run(stop), name="sms intake")
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
            for task in (*helpers, *self._tasks):
                task.cancel()
            await asyncio.gather(*helpers, *self._tasks, return_exceptions=True)
            await self.writer.flush()
            await asyncio.to_thread(self.health.publish)

    async def _until_idle(self) -> None:
        while self.open or len(self.writer) or len(self.limbo):
            await self.writer.next_write()

    async def _parked_loop(self) -> None:
        while True:
            await asyncio.sleep(PARKED_SECONDS)
            self.dispatcher.dispatch_parked()
            self.limbo.send_due()

    def _written(self) -> None:
        self.intake.room_made()

    # --- what the binds report (BindEvents) ----------------------------------------------------

    async def may_write(self) -> None:
        await self.writer.may_write()

    def submitted(self, bind: Bind, message: OutMessage) -> None:
        if message.message_id is None:
            log.info("SMS bind %s: confirmation to %s submitted", bind.name, masked(message.phone))
            return
        # Every part has its id by now (see Bind._answered, Limbo.prove).
        ids = tuple(smsc_id or "" for smsc_id in message.smsc_ids)
        self.writer.submitted(Submitted(message.message_id, bind.config.operator, bind.name, ids, utcnow()))

    def failed(self, bind: Bind, message: OutMessage, reason: str) -> None:
        if message.message_id is None:
            log.warning(
                "SMS bind %s: confirmation to %s not sent: %s", bind.name, masked(message.phone), reason
            )
            return
        log.warning("SMS to %s failed: %s", masked(message.phone), reason)
        self.writer.failed(message.message_id, reason)

    def health_changed(self, bind: Bind, state: BindState, detail: str) -> None:
        self.health.set(bind.name, state, detail)
        self._publish_health()
        if state is BindState.bound:
            self.intake.room_made()

    def down(self, bind: Bind) -> None:
        self.dispatcher.failover(bind)

    def unanswered(self, bind: Bind, parts: list[tuple[OutMessage, int]]) -> None:
        """Submits a dropped connection left unanswered: the SMSC may have accepted them (its
        responses can die with the connection). Those a receipt can prove wait in limbo; the
        others go again at once."""
        again: list[tuple[OutMessage, int]] = []
        for message, index in parts:
            if self.limbo.takes(message):
                self.limbo.hold(bind, message, index, fresh=False)
            else:
                again.append((message, index))
        if again:
            bind.resend(again)

    def deliver(self, bind: Bind, pdu: bytes, respond: Callable[[int], None]) -> None:
        try:
            message = P.read_deliver(pdu)
        except ValueError as exc:
            log.warning("SMS bind %s: unreadable deliver_sm (%s); refused", bind.name, exc)
            respond(ESME_RX_P_APPN)  # do not send it again
            return
        if not message.is_receipt:
            self.inbox.received(bind.name, message, respond)
            return
        # Acknowledged (`respond`) once written: a receipt a crash swallowed is delivered again.
        try:
            receipt = receipt_in(bind.config.operator, message, utcnow(), respond)
        except BadReceipt as exc:
            respond(0)
            log.warning("SMS bind %s: unreadable receipt ignored: %s", bind.name, str(exc)[:60])
            return
        self.writer.receipt(receipt)

    def _proven_by_receipt(self, receipt: ReceiptIn) -> bool:
        """An unknown receipt about a phone with an unanswered submit in limbo: that submit was
        accepted; record it with the receipt's SMSC id instead of sending it again."""
        proven = self.limbo.prove(receipt)
        if proven is None:
            return False
        self.submitted(proven.bind, proven.message)
        return True

    # --- upkeep --------------------------------------------------------------------------------

    def _set_aside(self, refused: SetAside, item: Claimed | None) -> None:
        """A row the database refused: logged (the number masked), shown in /health."""
        row = refused.row
        if isinstance(row, ReceiptIn):
            what = f"receipt for SMSC id {row.smsc_message_id[:4]}… to {masked(row.recipient)}"
        else:
            kind = "submit" if isinstance(row, Submitted) else "failure"
            to = masked(item.phone) if item else "an unknown number"
            what = f"{kind} of message {row.message_id} to {to}"
        effect = (
            " (the message is recorded submitted, without its receipt map)"
            if refused.written_unmapped
            else ""
        )
        log.error("SMS worker: %s set aside, the database refused it: %s%s", what, refused.reason, effect)
        self.health.note_set_aside(refused.reason)
        self._publish_health()

    def _publish_health(self) -> None:
        if not self._stopping.is_set():
            task = asyncio.get_running_loop().create_task(asyncio.to_thread(self.health.publish))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

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
            await asyncio.sleep(HEALTH_SECONDS)
            for name, bind in self.binds.items():
                metrics.SMS_WINDOW_IN_USE.labels(name).set(bind.window.in_flight)
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
    # The binds wake at their rate slots while the database writes run in threads; a thread holds
    # the GIL for up to the switch interval (5 ms by default) before the event loop gets it back,
    # and a batch written that late moves every slot after it (gateway/sms/ratelimit.py).
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
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
