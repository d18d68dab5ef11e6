"""One SMPP bind: its connection(s) to the SMSC, window, rate, retries and reconnects.

The connection is the project's own asyncio code speaking through aiosmpplib's PDU classes and
codecs (gateway/sms/pdu.py), not aiosmpplib's `ESME` loop: that loop writes one broker item at a
time with a drain per PDU, has no window, checks response timeouts only while other traffic
flows and does not re-send what a dropped connection swallowed (0.7.4 across an SMSC restart: 1 in 3,000) —
the measured ceiling with a window bolted on was ~0.6 of the node reference before any database
work. Here:

- **Window**: at most `window` submits unanswered (gateway/sms/flow.py).
- **Rate**: the contracted rate through the shared Redis token bucket (`rate_limit.take`), and a
  local limit that halves on ESME_RTHROTTLED / ESME_RMSGQFUL and recovers (AdaptiveRate).
- **Correlation**: by sequence number, expiry in deadline order (gateway/sms/correlator.py).
- **Retries**: throttled parts go again (slower); a transient status or a response timeout
  goes again after a backoff, at most `retries` times, then the message fails with the reason;
  a rejection fails it at once. Parts unanswered when the connection drops go again after the
  reconnect — the only way a message can reach the SMSC twice (it may have accepted a submit
  whose response was lost with the connection).
- **Keep-alive**: our own enquire_link after `enquire_link_seconds` without a byte from the SMSC,
  whether or not the SMSC probes; unanswered for `enquire_link_timeout_seconds`, the link is dead
  (half-open) and is dropped and bound again at once (`_keep`, `LinkSilent`).
- **Reconnect** with exponential backoff; a refused bind (wrong password …) is logged once per
  change in plain words, reported as health "auth_failed", and retried with a longer backoff.
- **Dispatch mark**: a message is handed to a bind only once the worker has committed its
  `dispatched_at` (with the claim), so after a crash the database tells which messages may have
  reached the SMSC.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

from aiosmpplib.state import SmppCommand as Cmd

from . import pdu as P
from .binds import BindConfig
from .correlator import Correlator
from .flow import AdaptiveRate, Backoff, Verdict, Window, judge, status_name
from .health import BindState
from .link import ConnectionLost, Link, LinkSilent
from .ratelimit import SentBatches
from .sending import BindEvents, OutMessage, RateLimit

log = logging.getLogger(__name__)

AUTH_STATUSES = {0x0E: "wrong password (ESME_RINVPASWD)", 0x0F: "unknown system_id (ESME_RINVSYSID)"}
CONNECT_TIMEOUT = 10.0


class BindRefused(Exception):
    """The SMSC answered the bind with an error status."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(AUTH_STATUSES.get(status, f"bind refused ({status_name(status)})"))

    @property
    def auth(self) -> bool:
        return self.status in AUTH_STATUSES


class Bind:
    def __init__(
        self,
        config: BindConfig,
        events: BindEvents,
        rate_limit: RateLimit | None = None,
        *,
        retries: int = 3,
        retry_backoff: Backoff = Backoff(0.5, 2.0, 30.0),
        reconnect_backoff: Backoff = Backoff(0.2, 2.0, 30.0),
        auth_backoff: Backoff = Backoff(5.0, 2.0, 300.0),
    ) -> None:
        self.config = config
        self.name = config.name
        self.events = events
        self.rate_limit = rate_limit
        self.retries = retries
        self.retry_backoff = retry_backoff
        self.reconnect_backoff = reconnect_backoff
        self.auth_backoff = auth_backoff
        self.window = Window(config.window)
        self.rate = AdaptiveRate(contracted=float(config.rate_per_second))
        self.correlator: Correlator[tuple[OutMessage, int]] = Correlator(config.response_timeout_seconds)
        self.source = P.Address(*config.source_address)
        self.ready: deque[tuple[OutMessage, int]] = deque()  # parts to write, in order
        self._wake = asyncio.Event()  # something to write: the sender's
        self._stop = asyncio.Event()  # its own: `_wake` is set per submit and per response
        self._bound = asyncio.Event()
        self._stopping = False
        self._tx: Link | None = None
        self.state = BindState.unbound
        self.resent_after_drop = 0  # parts written again after a dropped connection
        self.sent = SentBatches(rate_limit) if rate_limit is not None else None

    # --- what the worker calls -------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self._bound.is_set()

    def submit(self, message: OutMessage) -> None:
        message.bind = self.name
        self.ready.extend((message, i) for i, smsc_id in enumerate(message.smsc_ids) if smsc_id is None)
        self._wake.set()

    def backlog(self) -> int:
        return len(self.ready) + len(self.correlator)

    def take_unstarted(self) -> list[OutMessage]:
        """Messages routed here of which no part was written: free to go over another bind."""
        keep: deque[tuple[OutMessage, int]] = deque()
        moved: dict[int, OutMessage] = {}
        in_flight = {id(m) for m, _ in self.correlator}
        for message, index in self.ready:
            if message.started or id(message) in in_flight:
                keep.append((message, index))
            else:
                moved[id(message)] = message
        self.ready = keep
        return list(moved.values())

    async def stop(self) -> None:
        self._stopping = True
        self._stop.set()
        self._wake.set()
        link = self._tx
        if link is not None and self.up:
            try:
                await asyncio.wait_for(link.sendall(P.request_pdu("unbind", link.next_sequence())), 2)
            except (TimeoutError, OSError, ConnectionLost):
                pass

    # --- the connection's life ---------------------------------------------------------------

    async def run(self) -> None:
        """Bind, serve, and bind again after every failure, until `stop()`."""
        failures = 0
        while not self._stopping:
            links: list[Link] = []
            try:
                if self.config.mode == "transceiver":
                    links.append(await self._connect("transceiver"))
                else:
                    links.append(await self._connect("transmitter"))
                    links.append(await self._connect("receiver"))
                failures = 0
                await self._serve(links)
                if not self._stopping:
                    self._set_health(BindState.unbound, "connection closed by the SMSC")
            except BindRefused as exc:
                failures += 1
                state = BindState.auth_failed if exc.auth else BindState.bind_refused
                if self.state != state:
                    log.error(
                        "SMS bind %s: the SMSC %s:%s refused the bind as %r: %s — check the "
                        "bind's system_id/password (retrying with backoff)",
                        self.name,
                        self.config.host,
                        self.config.port,
                        self.config.system_id,
                        exc,
                    )
                self._set_health(state, str(exc))
                await self._pause(self.auth_backoff.delay(failures))
                continue
            except (TimeoutError, OSError, ConnectionLost) as exc:
                failures += 1
                reason = _describe(exc)
                if self.state != BindState.unbound or failures == 1:
                    log.warning("SMS bind %s: %s; reconnecting", self.name, reason)
                self._set_health(BindState.unbound, reason)
            finally:
                self._bound.clear()
                self._tx = None
                for link in links:
                    link.close()
                self._requeue_in_flight()
            if self._stopping:
                break
            if self.ready:
                self.events.down(self)
            await self._pause(self.reconnect_backoff.delay(failures))
        self._set_health(BindState.stopped, "")

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass

    async def _connect(self, mode: str) -> Link:
        link = await asyncio.wait_for(Link.open(self.config.host, self.config.port, mode), CONNECT_TIMEOUT)
        try:
            bind = P.bind_pdu(
                mode,
                self.config.system_id,
                self.config.password.get_secret_value(),
                self.config.system_type,
                link.next_sequence(),
            )
            await asyncio.wait_for(link.sendall(bind), CONNECT_TIMEOUT)
            raw = await asyncio.wait_for(link.read_pdu(), CONNECT_TIMEOUT)
        except BaseException:
            link.close()
            raise
        _, command, status, _ = P.parse_header(raw[:16])
        if command == Cmd.GENERIC_NACK or status != 0:
            link.close()
            raise BindRefused(status or 0xFF)
        return link

    async def _serve(self, links: list[Link]) -> None:
        self._tx = links[0]
        self._bound.set()
        self._set_health(BindState.bound, f"{self.config.mode} to {self.config.host}:{self.config.port}")
        log.info(
            "SMS bind %s: bound (%s) to %s:%s",
            self.name,
            self.config.mode,
            self.config.host,
            self.config.port,
        )
        readers = [asyncio.create_task(self._read(link)) for link in links]
        tasks = [*readers]
        tasks.append(asyncio.create_task(self._keep(links)))
        tasks.append(asyncio.create_task(self._send(links[0])))
        stopper = asyncio.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            if not all(r.done() for r in readers) and not self._stopping and not _silent(done):
                # A write failed first: the responses the SMSC sent before closing are still in
                # the receive buffer. Read them (up to EOF) before calling anything unanswered,
                # or accepted submits would be sent twice. (A silent link has nothing more to
                # read: waiting for it only delays the reconnect.)
                done |= (await asyncio.wait(readers, timeout=2.0))[0]
        finally:
            for task in (*tasks, stopper):
                task.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)
        for task in done:
            if task is not stopper and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    def _requeue_in_flight(self) -> None:
        """The connection is gone: the worker decides when each unanswered part goes again."""
        pending = self.correlator.drain()
        self.window.reset()
        if self.sent is not None:
            self.sent.clear()  # their answers died with the connection
        pending = [(m, i) for m, i in pending if not m.done]
        if pending:
            log.warning(
                "SMS bind %s: %d submit(s) unanswered when the connection ended", self.name, len(pending)
            )
            self.events.unanswered(self, pending)

    def resend(self, parts: list[tuple[OutMessage, int]]) -> None:
        """Write these parts again, before anything else."""
        parts = [(m, i) for m, i in parts if not m.done]
        self.resent_after_drop += len(parts)
        self.ready.extendleft(reversed(parts))
        self._wake.set()

    def _set_health(self, state: BindState, detail: str) -> None:
        self.state = state
        self.events.health_changed(self, state, detail)

    # --- tasks while bound ---------------------------------------------------------------------

    async def _send(self, link: Link) -> None:
        writer = link
        window = self.window
        correlator = self.correlator
        while True:
            while not self.ready:
                self._wake.clear()
                await self._wake.wait()
            await self.events.may_write()
            wanted = min(len(self.ready), await window.room())
            if self.rate_limit is not None and self.rate.contracted:
                wanted = await self.rate_limit.take(wanted)
            now = time.monotonic()
            local, wait = self.rate.take(now, wanted)
            if local == 0:
                # What the shared bucket granted is spent: this second is simply slower.
                await asyncio.sleep(wait)
                continue
            count = min(local, len(self.ready), window.size - window.in_flight)
            sequence = None
            for _ in range(count):
                message, index = self.ready.popleft()
                if message.done:
                    continue
                sequence = correlator.next_sequence()
                writer.write(P.with_sequence(message.pdus[index], sequence))
                correlator.put(sequence, (message, index), now)
                window.in_flight += 1
            self.rate.note_sent(now, count)
            if self.sent is not None:
                self.sent.written(sequence, time.monotonic())
            await writer.drain()

    async def _keep(self, links: list[Link]) -> None:
        """Expire unanswered submits, recover the rate, keep the links alive with enquire_link.

        RULE: after `enquire_link_seconds` without a byte from the SMSC, an enquire_link of our own
        (whether or not the SMSC probes); unanswered for `enquire_link_timeout_seconds`, the link
        is dead (a half-open connection, a NAT that forgot it) and is dropped and bound again."""
        interval = self.config.enquire_link_seconds
        tick = min(
            0.25, self.config.response_timeout_seconds / 4, self.config.enquire_link_timeout_seconds / 4
        )
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if self.sent is not None:
                self.sent.trim(len(self.correlator))
            for message, index in self.correlator.expire(now):
                self.window.release()
                self._retry(message, index, "no response from the SMSC")
            self.rate.tick(now)
            for link in links:
                if link.enquiry_sent is not None:
                    if now - link.enquiry_sent > self.config.enquire_link_timeout_seconds:
                        raise LinkSilent(
                            f"no answer to enquire_link within {self.config.enquire_link_timeout_seconds:g} s"
                        )
                elif now - link.last_heard > interval:
                    link.enquiry_sent = now
                    link.write(P.request_pdu("enquire_link", link.next_sequence()))

    async def _read(self, link: Link) -> None:
        for_submit = (Cmd.SUBMIT_SM_RESP, Cmd.GENERIC_NACK)
        while True:
            pdus = await link.read_pdus()
            arrived = time.monotonic()  # for all of them: handling the first ones takes a while
            for raw in pdus:
                _, command, status, sequence = P.HEADER.unpack_from(raw)
                if command in for_submit:
                    if self.sent is not None:
                        self.sent.answered(sequence, arrived)
                    entry = self.correlator.pop(sequence)
                    if entry is None:
                        if command == Cmd.GENERIC_NACK:
                            log.warning(
                                "SMS bind %s: generic_nack %s for sequence %d",
                                self.name,
                                status_name(status),
                                sequence,
                            )
                        continue
                    self.window.release()
                    self._wake.set()
                    message, index = entry
                    self._answered(message, index, status, raw if command == Cmd.SUBMIT_SM_RESP else None)
                elif command == Cmd.DELIVER_SM:
                    self.events.deliver(self, raw, _responder(link, sequence))
                elif command == Cmd.ENQUIRE_LINK_RESP:
                    link.enquiry_sent = None
                elif command == Cmd.ENQUIRE_LINK:
                    link.write(P.response_pdu(command, sequence))
                elif command == Cmd.UNBIND:
                    link.write(P.response_pdu(command, sequence))
                    await link.drain()
                    raise ConnectionLost("the SMSC unbound")
                elif command == Cmd.UNBIND_RESP:
                    raise ConnectionLost("unbound")
                else:
                    log.warning("SMS bind %s: unexpected command 0x%08x ignored", self.name, command)

    # --- outcomes ------------------------------------------------------------------------------

    def _answered(self, message: OutMessage, index: int, status: int, raw: bytes | None) -> None:
        if message.done:
            return
        verdict = judge(status) if raw is not None or status else Verdict.rejected
        if verdict is Verdict.accepted and raw is not None:
            try:
                smsc_id = P.parse_submit_resp(raw)
            except (ValueError, UnicodeDecodeError):
                smsc_id = ""
            message.smsc_ids[index] = smsc_id or f"?{time.time_ns()}"
            if all(message.smsc_ids):
                message.done = True
                self.events.submitted(self, message)
        elif verdict is Verdict.throttled:
            if self.rate.throttled(time.monotonic()):
                log.warning(
                    "SMS bind %s: SMSC says %s; slowing down to %.0f msg/s",
                    self.name,
                    status_name(status),
                    self.rate.limit() or 0,
                )
            self.ready.appendleft((message, index))
        elif verdict is Verdict.transient:
            self._retry(message, index, f"SMSC error {status_name(status)}")
        else:
            message.done = True
            self.events.failed(self, message, f"rejected by the SMSC: {status_name(status)}")

    def _retry(self, message: OutMessage, index: int, reason: str) -> None:
        if message.done:
            return
        message.retries += 1
        if message.retries > self.retries:
            message.done = True
            self.events.failed(self, message, f"{reason} after {message.retries} attempts")
            return
        loop = asyncio.get_running_loop()
        loop.call_later(self.retry_backoff.delay(message.retries), self._again, message, index)

    def _again(self, message: OutMessage, index: int) -> None:
        if not message.done:
            self.ready.appendleft((message, index))
            self._wake.set()


def _silent(finished: set[asyncio.Task]) -> bool:
    return any(not t.cancelled() and isinstance(t.exception(), LinkSilent) for t in finished)


def _responder(link: Link, sequence: int) -> Callable[[int], None]:
    def respond(status: int = 0) -> None:
        link.write(P.response_pdu(Cmd.DELIVER_SM, sequence, status))

    return respond


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out connecting to the SMSC"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the SMSC up?)"
    return str(exc) or type(exc).__name__
