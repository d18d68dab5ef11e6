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
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiosmpplib.state import SmppCommand as Cmd

from . import pdu as P
from .binds import BindConfig
from .correlator import Correlator
from .flow import AdaptiveRate, Backoff, Verdict, Window, judge, status_name

log = logging.getLogger(__name__)

# The commands the reader tells apart for every message, as plain ints (cheaper to compare).
SUBMIT_SM_RESP, GENERIC_NACK, DELIVER_SM = int(Cmd.SUBMIT_SM_RESP), int(Cmd.GENERIC_NACK), int(Cmd.DELIVER_SM)
AUTH_STATUSES = {0x0E: "wrong password (ESME_RINVPASWD)", 0x0F: "unknown system_id (ESME_RINVSYSID)"}
CONNECT_TIMEOUT = 10.0
READ_LIMIT = 2**16 + 1024


@dataclass(eq=False, slots=True)
class OutMessage:
    """A message on its way out: one PDU per part, the SMSC id of each accepted part."""

    message_id: int | None  # None: a service message (STOP confirmation), not a Message row
    phone: str
    pdus: list[bytes]
    smsc_ids: list[str | None] = field(default_factory=list)
    retries: int = 0  # transient failures and timeouts so far
    done: bool = False
    bind: str = ""

    def __post_init__(self) -> None:
        if not self.smsc_ids:
            self.smsc_ids = [None] * len(self.pdus)

    @property
    def started(self) -> bool:
        return any(self.smsc_ids)


class BindEvents(Protocol):
    """What a bind tells the worker."""

    async def may_write(self) -> None: ...
    def submitted(self, bind: Bind, message: OutMessage) -> None: ...
    def failed(self, bind: Bind, message: OutMessage, reason: str) -> None: ...
    def deliver(self, bind: Bind, pdu: bytes, respond: Callable[[int], None]) -> None: ...
    def health_changed(self, bind: Bind, state: str, detail: str) -> None: ...
    def down(self, bind: Bind) -> None: ...
    def unanswered(self, bind: Bind, parts: list[tuple[OutMessage, int]]) -> None: ...


class RateLimit(Protocol):
    async def take(self, wanted: int) -> int: ...
    def written(self, at: float) -> object | None: ...  # the batch's grant, for `accepted`
    def accepted(self, grant: Any, at: float) -> None: ...


class BindRefused(Exception):
    """The SMSC answered the bind with an error status."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(AUTH_STATUSES.get(status, f"bind refused ({status_name(status)})"))

    @property
    def auth(self) -> bool:
        return self.status in AUTH_STATUSES


class ConnectionLost(Exception):
    """The SMSC closed the connection, or stopped answering enquire_link."""


class LinkSilent(ConnectionLost):
    """An enquire_link went unanswered: the connection is open but nobody answers (half-open)."""


class _Link:
    """One bound TCP connection on a plain non-blocking socket, read by a callback.

    Not asyncio's streams: when a write fails because the SMSC has closed the connection, a
    stream transport closes at once and its reader raises before handing out what was already
    received — the responses the SMSC sent just before closing, whose submits it had accepted.
    Losing them means sending those messages twice. Here a write error only stops writing; the
    socket is read (one reader callback, registered once) until EOF.
    """

    HIGH_WATER = 256 * 1024

    def __init__(self, sock: socket.socket, mode: str) -> None:
        self.sock, self.mode = sock, mode
        self.loop = asyncio.get_running_loop()
        self.last_heard = time.monotonic()
        self.enquiry_sent: float | None = None
        self.sequence = 1  # for the link's own requests (bind, enquire_link, unbind)
        self._in = bytearray()
        self._pos = 0
        self._pdus: deque[bytes] = deque()
        self._arrived = asyncio.Event()
        self._eof: BaseException | None = None
        self._out = bytearray()
        self._writing = False
        self._sent = asyncio.Event()
        self._sent.set()
        self.broken: BaseException | None = None
        self._fd = sock.fileno()
        self.loop.add_reader(self._fd, self._readable)

    @classmethod
    async def open(cls, host: str, port: int, mode: str) -> _Link:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await loop.sock_connect(sock, address)
        except BaseException:
            sock.close()
            raise
        return cls(sock, mode)

    # reading ----------------------------------------------------------------------------------

    def _readable(self) -> None:
        try:
            while True:
                data = self.sock.recv(262144)
                if not data:
                    self._end(ConnectionLost("the SMSC closed the connection"))
                    break
                self._in += data
                if len(data) < 262144:
                    break
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            self._end(ConnectionLost(f"connection lost: {exc}"))
        self.last_heard = time.monotonic()
        self._split()

    def _split(self) -> None:
        buf, pos = self._in, self._pos
        while len(buf) - pos >= 16:
            length = int.from_bytes(buf[pos : pos + 4], "big")
            if length < 16 or length > READ_LIMIT:
                self._end(ConnectionLost(f"PDU length {length} out of range"))
                break
            if len(buf) - pos < length:
                break
            self._pdus.append(bytes(buf[pos : pos + length]))
            pos += length
        if pos > 65536 or pos == len(buf):
            del buf[:pos]
            pos = 0
        self._pos = pos
        if self._pdus:
            self._arrived.set()

    def _end(self, exc: BaseException) -> None:
        if self._eof is None:
            self._eof = exc
            self.loop.remove_reader(self._fd)
        self._arrived.set()

    async def _received(self) -> None:
        """Wait for a PDU; raises once the connection has ended and every PDU was read."""
        while not self._pdus:
            if self._eof is not None:
                raise self._eof
            self._arrived.clear()
            await self._arrived.wait()

    async def read_pdu(self) -> bytes:
        await self._received()
        return self._pdus.popleft()

    async def read_pdus(self) -> list[bytes]:
        """Every PDU received so far, at least one: one await for all (two arrive per message sent)."""
        await self._received()
        pdus = list(self._pdus)
        self._pdus.clear()
        return pdus

    # writing ----------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue `data`; everything written in one turn of the event loop goes out in one send."""
        if self.broken is not None:
            return
        self._out += data
        if not self._writing:
            self._writing = True
            self.loop.call_soon(self._first_send)
        if len(self._out) >= self.HIGH_WATER:
            self._sent.clear()

    def _first_send(self) -> None:
        if self.broken is not None or self.sock.fileno() < 0:
            return
        self._writable()
        if self._out and self.broken is None:
            self.loop.add_writer(self._fd, self._writable)

    def _writable(self) -> None:
        try:
            sent = self.sock.send(self._out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._broke(exc)
            return
        del self._out[:sent]
        if not self._out:
            self.loop.remove_writer(self._fd)  # no-op when only _first_send ran
            self._writing = False
        if len(self._out) < self.HIGH_WATER:
            self._sent.set()

    def _broke(self, exc: BaseException) -> None:
        # Stop writing; keep reading what the SMSC sent before it closed.
        self.broken = exc
        self._out.clear()
        if self._writing:
            self.loop.remove_writer(self._fd)
            self._writing = False
        self._sent.set()

    async def drain(self) -> None:
        """Wait while much is waiting to be sent (flow control); raises once writing failed."""
        if self.broken is not None:
            raise ConnectionLost(f"writing failed: {self.broken}")
        await self._sent.wait()
        if self.broken is not None:
            raise ConnectionLost(f"writing failed: {self.broken}")

    async def sendall(self, data: bytes) -> None:
        """Write and wait until all of it is with the kernel (bind, unbind)."""
        self.write(data)
        while self._out and self.broken is None:
            await asyncio.sleep(0.01)
        if self.broken is not None:
            raise ConnectionLost(f"writing failed: {self.broken}")

    def next_sequence(self) -> int:
        # Requests of the link itself count down from the top, so they never meet the submits'.
        self.sequence += 1
        return 0x7FFFFFFF - (self.sequence % 0x10000)

    def close(self) -> None:
        if self._eof is None:
            self._end(ConnectionLost("closed"))
        if self._writing:
            self.loop.remove_writer(self._fd)
            self._writing = False
        self.broken = self.broken or ConnectionLost("closed")
        self.sock.close()


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
        self._tx: _Link | None = None
        self.state = "unbound"
        self.resent_after_drop = 0  # parts written again after a dropped connection
        # For the rate limit: each batch's grant by the sequence of its last PDU, until answered;
        # when each batch's first PDU was written, until answered: the quickest recent of those
        # answers is the link's own round trip for one PDU, not a late SMSC.
        self._batches: dict[int, tuple[Any, float]] = {}
        self._first_written: dict[int, float] = {}
        self._round_trips: deque[float] = deque(maxlen=64)

    # --- what the worker calls -------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self._bound.is_set()

    def submit(self, message: OutMessage) -> None:
        message.bind = self.name
        if len(message.pdus) == 1:  # the common case, without a generator per message
            if message.smsc_ids[0] is None:
                self.ready.append((message, 0))
        else:
            self.ready.extend((message, i) for i in range(len(message.pdus)) if message.smsc_ids[i] is None)
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
            links: list[_Link] = []
            try:
                if self.config.mode == "transceiver":
                    links.append(await self._connect("transceiver"))
                else:
                    links.append(await self._connect("transmitter"))
                    links.append(await self._connect("receiver"))
                failures = 0
                await self._serve(links)
                if not self._stopping:
                    self._set_health("unbound", "connection closed by the SMSC")
            except BindRefused as exc:
                failures += 1
                state = "auth_failed" if exc.auth else "bind_refused"
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
                if self.state != "unbound" or failures == 1:
                    log.warning("SMS bind %s: %s; reconnecting", self.name, reason)
                self._set_health("unbound", reason)
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
        self._set_health("stopped", "")

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass

    async def _connect(self, mode: str) -> _Link:
        link = await asyncio.wait_for(_Link.open(self.config.host, self.config.port, mode), CONNECT_TIMEOUT)
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

    async def _serve(self, links: list[_Link]) -> None:
        self._tx = links[0]
        self._bound.set()
        self._set_health("bound", f"{self.config.mode} to {self.config.host}:{self.config.port}")
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
        self._batches.clear()  # their answers died with the connection
        self._first_written.clear()
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

    def _set_health(self, state: str, detail: str) -> None:
        self.state = state
        self.events.health_changed(self, state, detail)

    # --- tasks while bound ---------------------------------------------------------------------

    async def _send(self, link: _Link) -> None:
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
            first = sequence = None
            for _ in range(count):
                message, index = self.ready.popleft()
                if message.done:
                    continue
                sequence = correlator.next_sequence()
                first = first or sequence
                writer.write(P.with_sequence(message.pdus[index], sequence))
                correlator.put(sequence, (message, index), now)
                window.in_flight += 1
            self.rate.note_sent(now, count)
            if self.rate_limit is not None:
                written = time.monotonic()
                grant = self.rate_limit.written(written)
                if grant is not None and first is not None and sequence is not None:
                    self._first_written[first] = written
                    self._batches[sequence] = (grant, written)
            await writer.drain()

    async def _keep(self, links: list[_Link]) -> None:
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
            if len(self._batches) + len(self._first_written) > 2 * len(self.correlator):
                self._batches.clear()  # some of their PDUs went unanswered (expired)
                self._first_written.clear()
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

    async def _read(self, link: _Link) -> None:
        for_submit = (SUBMIT_SM_RESP, GENERIC_NACK)
        while True:
            for raw in await link.read_pdus():
                _, command, status, sequence = P.HEADER.unpack_from(raw)
                if command in for_submit:
                    if sequence in self._first_written or sequence in self._batches:
                        self._batch_answered(sequence)
                    entry = self.correlator.pop(sequence)
                    if entry is None:
                        if command == GENERIC_NACK:
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
                    self._answered(message, index, status, raw if command == SUBMIT_SM_RESP else None)
                elif command == DELIVER_SM:
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

    def _batch_answered(self, sequence: int) -> None:
        """A rate-limited batch's first PDU was answered (a round trip of one PDU), or its last (the
        SMSC accepted the whole batch by now, less that round trip): what a batch that reached the
        SMSC late, or took it long to read, tells the rate limit (see ratelimit.py)."""
        now = time.monotonic()
        written = self._first_written.pop(sequence, None)
        if written is not None:
            self._round_trips.append(now - written)
        if sequence in self._batches:
            grant, written = self._batches.pop(sequence)
            accepted = now - min(self._round_trips, default=0.0)
            self.rate_limit.accepted(grant, max(written, accepted))  # type: ignore[union-attr]

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


def _responder(link: _Link, sequence: int) -> Callable[[int], None]:
    def respond(status: int = 0) -> None:
        link.write(P.response_pdu(Cmd.DELIVER_SM, sequence, status))

    return respond


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out connecting to the SMSC"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the SMSC up?)"
    return str(exc) or type(exc).__name__
