"""The AMI connection: one asyncio client that logs in, sends actions and hands out events.

Our own client on asyncio streams rather than pyst2's `asterisk.manager`: the voice worker is
asyncio and keeps hundreds of `Originate`s with `Async: true` in flight, each answered much later
by an `OriginateResponse` event that only its ActionID ties back to the call. pyst2's manager runs
its own reader thread, correlates nothing but the immediate response, and keeps only the last line
of a multi-line `Output` (pyst2 0.5.1). Here every action gets a generated ActionID, responses and
event lists (`CoreShowChannels`…) come back to the coroutine that sent them, and `originate()` /
`wait_originate()` give each call its own outcome.

When the connection drops (Asterisk restarts), whatever was waiting fails at once with
`AMIConnectionLost` — the caller decides whether to retry, as only it knows whether a second call
is acceptable — and the client reconnects in the background with backoff and logs in again. A
refused login raises `AMIAuthError` and is never retried unless asked (`retry_auth_errors`): a
wrong secret does not fix itself.

Nothing here logs the secret, a channel name or a caller ID in full: logs carry ActionIDs and
Uniqueids; a channel, when it must appear, is masked (`masked_channel`).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import re
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.phone import masked

log = logging.getLogger(__name__)

# OriginateResponse `Reason`: Asterisk's last control frame on the outgoing channel (AST_CONTROL_*).
ORIGINATE_REASONS = {
    0: "failed",  # no channel: unknown technology or extension, or the dial failed outright
    1: "hangup",  # the far end hung up before answering
    3: "no answer",  # still ringing when the Originate's Timeout ran out
    4: "answered",
    5: "busy",
    8: "congestion",
}

LINE_LIMIT = 1 << 20  # one AMI line; longer ones are dropped, not fatal
DEFAULT_RECONNECT_DELAY = (0.5, 1, 2, 5, 10)  # seconds; the last one repeats

EventCallback = Callable[["Message"], Awaitable[None] | None]
ReconnectHook = Callable[[], Awaitable[None] | None]


# --- errors ------------------------------------------------------------------------------------


class AMIError(Exception):
    """Base of every error this client raises on purpose."""


class AMIAuthError(AMIError):
    """Asterisk refused the login: the username or secret is wrong, or the user may not connect."""


class AMIConnectionLost(AMIError, ConnectionError):
    """There is no AMI connection (it dropped, could not be opened, or the client is closed).

    An action or Originate that was waiting may or may not have reached Asterisk; retry it only
    where doing it twice is acceptable.
    """


class AMINotSent(AMIConnectionLost):
    """The action was not sent: there was no connection. Asterisk never saw it."""


class AMIActionError(AMIError):
    """Asterisk answered an action with `Response: Error` where no error was acceptable."""

    def __init__(self, message: str, response: Message):
        super().__init__(message)
        self.response = response


# --- messages ----------------------------------------------------------------------------------


class Message(Mapping[str, str]):
    """One AMI message: its fields in wire order, keys case-sensitive as Asterisk sends them.

    `message[key]` is the first value of `key`; `getall(key)` keeps every value in order (the
    `Output` lines of a `Command` response, repeated `Variable`s). A response to an event-list
    action carries the list's events in `events` and its closing `...Complete` event in `complete`.
    """

    __slots__ = ("_fields", "complete", "events")

    def __init__(self, fields: Iterable[tuple[str, str]] = ()):
        self._fields: list[tuple[str, str]] = list(fields)
        self.events: list[Message] = []
        self.complete: Message | None = None

    @classmethod
    def parse(cls, text: str) -> Message:
        """A message from its wire text (CRLF or LF lines; lines without a colon are ignored)."""
        return cls(field for field in map(parse_line, text.splitlines()) if field is not None)

    def __getitem__(self, key: str) -> str:
        for name, value in self._fields:
            if name == key:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self._fields))

    def __len__(self) -> int:
        return len({name for name, _ in self._fields})

    def __contains__(self, key: object) -> bool:
        return any(name == key for name, _ in self._fields)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Message):
            return self._fields == other._fields
        return super().__eq__(other)

    __hash__ = None  # mutable-ish, like a dict

    def getall(self, key: str) -> list[str]:
        """Every value of `key`, in the order Asterisk sent them."""
        return [value for name, value in self._fields if name == key]

    @property
    def fields(self) -> list[tuple[str, str]]:
        """All (key, value) pairs in wire order, repeated keys included."""
        return list(self._fields)

    @property
    def name(self) -> str | None:
        """The event name, or None for a response."""
        return self.get("Event")

    @property
    def is_event(self) -> bool:
        return "Event" in self

    @property
    def is_response(self) -> bool:
        return "Response" in self and "Event" not in self

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    @property
    def ok(self) -> bool:
        """A response that is not an error (`Success`, `Goodbye` for Logoff, `Follows`)."""
        return self.get("Response") in ("Success", "Goodbye", "Follows")

    def __repr__(self) -> str:
        # Names only: values hold caller IDs and channel names, which do not belong in logs.
        kind = f"Event={self.name}" if self.is_event else f"Response={self.get('Response')}"
        return f"<Message {kind} ActionID={self.action_id} keys={list(self)}>"


def parse_line(line: str) -> tuple[str, str] | None:
    """`Key: value` → (key, value); the value keeps any further colons; None for a non-field line."""
    line = line.rstrip("\r\n")
    key, colon, value = line.partition(":")
    key = key.strip()
    if not colon or not key or " " in key:
        return None
    return key, value[1:] if value.startswith(" ") else value


def encode_action(fields: Iterable[tuple[str, Any]]) -> bytes:
    """The wire form of an action; refuses line breaks, which would smuggle in extra fields."""
    lines = []
    for key, value in fields:
        text = _wire_value(value)
        if not re.fullmatch(r"[A-Za-z0-9_()-]+", key):
            raise ValueError(f"not an AMI field name: {key!r}")
        if "\r" in text or "\n" in text:
            raise ValueError(f"AMI field {key} contains a line break")
        lines.append(f"{key}: {text}\r\n")
    return ("".join(lines) + "\r\n").encode("utf-8")


def _wire_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def masked_channel(channel: str | None) -> str:
    """A channel name fit for logs: numbers of 6+ digits masked (PJSIP/0612****78@trunk).

    The `-00000007` sequence suffix of a channel name is no phone number and stays readable.
    """
    if not channel:
        return "<none>"
    return re.sub(r"(?<![-\d])\+?\d{6,}", lambda m: masked(m.group()), channel)


@dataclass(frozen=True, slots=True)
class OriginateResult:
    """How an `Async` Originate ended, from its `OriginateResponse` event."""

    action_id: str
    response: str  # "Success" or "Failure"
    reason: int | None  # ORIGINATE_REASONS
    uniqueid: str | None  # of the outgoing channel; None when there was none (`<unknown>`)
    event: Message

    @classmethod
    def from_event(cls, event: Message) -> OriginateResult:
        reason = event.get("Reason", "")
        uniqueid = event.get("Uniqueid")
        return cls(
            action_id=event.get("ActionID", ""),
            response=event.get("Response", ""),
            reason=int(reason) if reason.lstrip("-").isdigit() else None,
            uniqueid=None if uniqueid in (None, "", "<unknown>", "<null>") else uniqueid,
            event=event,
        )

    @property
    def success(self) -> bool:
        return self.response == "Success"

    @property
    def reason_text(self) -> str:
        return ORIGINATE_REASONS.get(self.reason, f"reason {self.reason}")


# --- the client --------------------------------------------------------------------------------


class _Pending:
    """An action waiting for its response (and, for an event list, for the list's end)."""

    __slots__ = ("future", "response")

    def __init__(self) -> None:
        self.future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.response: Message | None = None

    @property
    def collecting(self) -> bool:
        return self.response is not None and not self.future.done()


_END = object()  # ends an EventStream


class EventStream:
    """`async for event in client.events(...)`: a subscriber's own bounded queue of events.

    Subscribed from creation, so nothing is missed between `events()` and the first `async for`.
    When the queue is full the oldest events are dropped (and counted in `dropped`): a slow reader
    must not stall the connection every Originate depends on.
    """

    def __init__(self, client: AMIClient, names: frozenset[str], maxsize: int):
        self._client, self._names = client, names
        self._queue: deque[Any] = deque()
        self._maxsize = maxsize
        self._wakeup = asyncio.Event()
        self.dropped = 0

    def _offer(self, item: Any) -> None:
        if item is not _END and not isinstance(item, BaseException):
            if self._names and item.name not in self._names:
                return
            if len(self._queue) >= self._maxsize:
                self._queue.popleft()
                self.dropped += 1
                if self.dropped == 1:
                    log.warning("AMI event stream is full (%d); dropping the oldest events", self._maxsize)
        self._queue.append(item)
        self._wakeup.set()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Message:
        while not self._queue:
            self._wakeup.clear()
            await self._wakeup.wait()
        item = self._queue[0]
        if item is _END:
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        self._queue.popleft()
        return item

    def close(self) -> None:
        """Unsubscribe; the iteration ends after the events already queued."""
        self._client._streams.discard(self)
        self._offer(_END)

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


class AMIClient:
    """An asyncio AMI client for one Asterisk: actions by ActionID, events, Originate outcomes.

    `events` is the Login's event filter: "on" (everything), "off", or classes such as "call";
    Originate outcomes need the `call` class.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        reconnect_delay: Iterable[float] = DEFAULT_RECONNECT_DELAY,
        on_event: EventCallback | None = None,
        on_reconnect: ReconnectHook | None = None,
        events: str = "on",
        retry_auth_errors: bool = False,
        connect_timeout: float = 10.0,
        action_timeout: float = 30.0,
        boot_timeout: float = 120.0,
    ):
        self.host, self.port, self.username = host, port, username
        self._secret = secret
        self._delays = tuple(reconnect_delay) or (1.0,)
        self.on_event, self.on_reconnect = on_event, on_reconnect
        self._event_filter = events
        self._retry_auth_errors = retry_auth_errors
        self._connect_timeout, self._action_timeout, self._boot_timeout = (
            connect_timeout,
            action_timeout,
            boot_timeout,
        )
        # `FullyBooted` is a `system` event: waited for only when the filter lets it through.
        self._waits_for_boot = any(c.strip().lower() in ("on", "all", "system") for c in events.split(","))
        # ActionIDs unique across this client's reconnects and across processes sharing Asterisk.
        self._id_prefix = f"bn-{secrets.token_hex(4)}"
        self._ids = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._originates: dict[str, asyncio.Future[Message]] = {}
        self._streams: set[EventStream] = set()
        self._hook_tasks: set[asyncio.Task] = set()
        self._writer: asyncio.StreamWriter | None = None
        self._write_lock: asyncio.Lock | None = None
        self._supervisor: asyncio.Task | None = None
        self._connected: asyncio.Event | None = None
        self._closing = False
        self._fatal: AMIError | None = None
        self.banner: str | None = None
        self.garbage_lines = 0  # lines that were not `Key: value`, skipped
        self.reconnects = 0

    def __repr__(self) -> str:
        return f"<AMIClient {self.username}@{self.host}:{self.port} connected={self.connected}>"

    # -- connection --

    @property
    def connected(self) -> bool:
        """Logged in, and the connection is up."""
        return self._connected is not None and self._connected.is_set()

    async def connect(self, *, retry: bool = False) -> None:
        """Open the connection and log in; with `retry`, wait out an unreachable Asterisk (backoff).

        Raises AMIAuthError when the login is refused (retried only with `retry_auth_errors`) and,
        without `retry`, AMIConnectionLost when Asterisk cannot be reached.
        """
        if self._supervisor is not None:
            raise RuntimeError("AMIClient.connect() was already called")
        self._connected = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._closing = False
        if retry:
            reader, _ = await self._open_with_backoff(wait_first=False)
        else:
            reader, _ = await self._open()
        self._supervisor = asyncio.create_task(self._supervise(reader), name=f"ami-{self.host}:{self.port}")
        self._supervisor.add_done_callback(self._supervisor_done)

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Return once logged in (again); raises TimeoutError, or the error that ended the client."""
        if self._connected is None:
            raise RuntimeError("AMIClient.connect() was never called")
        self._raise_if_finished()
        waiter = asyncio.create_task(self._connected.wait())
        watched = [waiter] + ([self._supervisor] if self._supervisor is not None else [])
        try:
            async with asyncio.timeout(timeout):
                while not self.connected:
                    await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                    self._raise_if_finished()
        finally:
            waiter.cancel()

    async def close(self) -> None:
        """Log off, close the connection; waiting actions fail and event streams end."""
        if self._closing:
            return
        self._closing = True
        if self.connected:
            try:
                await self.action("Logoff", timeout=2)
            except (AMIError, TimeoutError, OSError) as exc:
                log.debug("AMI logoff skipped: %s", type(exc).__name__)
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.wait([self._supervisor])
        self._drop_connection()
        self._fail_waiting(AMIConnectionLost("the AMI client was closed"))
        for stream in list(self._streams):
            stream.close()
        if self._hook_tasks:  # hooks still running get a moment to finish, then are cancelled
            _, unfinished = await asyncio.wait(self._hook_tasks, timeout=2)
            for task in unfinished:
                task.cancel()

    async def __aenter__(self) -> AMIClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- actions --

    def next_action_id(self) -> str:
        """A fresh ActionID, unique for this client."""
        return f"{self._id_prefix}-{next(self._ids)}"

    async def action(self, name: str, *, timeout: float | None = None, **fields: Any) -> Message:
        """Send one action and return its response.

        Field values may be lists (one line each, e.g. `Variable`); None leaves a field out. For an
        event-list action (`EventList: start`) the response returns once the `...Complete` event
        came, with the events in `response.events`. Raises AMIConnectionLost when the connection
        is down or drops meanwhile, TimeoutError after `timeout` (default `action_timeout`).
        """
        action_id = str(fields.pop("ActionID", None) or self.next_action_id())
        wire = encode_action([("Action", name), ("ActionID", action_id), *_flatten(fields)])
        if action_id in self._pending:
            raise ValueError(f"ActionID {action_id} is already waiting for a response")
        pending = self._pending[action_id] = _Pending()
        try:
            await self._send(wire)
            async with asyncio.timeout(self._action_timeout if timeout is None else timeout):
                return await pending.future
        finally:
            self._pending.pop(action_id, None)

    async def command(self, cli: str, *, timeout: float | None = None) -> list[str]:
        """Run one CLI command (`Action: Command`) and return its output lines."""
        response = await self.action("Command", Command=cli, timeout=timeout)
        if not response.ok:  # Asterisk 22 puts the reason in Output ("No such command ...")
            reason = "; ".join(response.getall("Output")) or response.get("Message", "no reason given")
            raise AMIActionError(f"Command {cli!r} failed: {reason}", response)
        return response.getall("Output")

    async def originate(
        self,
        channel: str,
        *,
        context: str | None = None,
        exten: str | None = None,
        priority: int | str = 1,
        application: str | None = None,
        data: str | None = None,
        caller_id: str | None = None,
        variables: Mapping[str, Any] | None = None,
        timeout_ms: int = 30000,
        channel_id: str | None = None,
        action_id: str | None = None,
        response_timeout: float | None = None,
    ) -> str:
        """Queue a call (`Async: true`) and return its ActionID; its outcome: `wait_originate()`.

        Either `context`+`exten` (+`priority`) or `application` (+`data`). `variables` are escaped
        against Asterisk's splitting at commas. `channel_id` becomes the Uniqueid of the channel
        (ChannelId; of a Local channel's ;1 half), so its events can be told apart from the start. The outcome comes as a `call`-class event, so the
        client's `events` filter must include it. Raises AMIActionError when Asterisk refuses the
        Originate outright, AMIConnectionLost when the connection drops before Asterisk answered
        (the call may or may not have been queued).
        """
        if (application is None) == (exten is None):
            raise ValueError("originate needs either exten (with context) or application, not both")
        if exten is not None and context is None:
            raise ValueError("originate with exten needs a context")
        action_id = action_id or self.next_action_id()
        if action_id in self._originates:
            raise ValueError(f"an Originate with ActionID {action_id} is still awaited")
        fields: dict[str, Any] = {"Channel": channel}
        if application is not None:
            fields.update(Application=application, Data=data)
        else:
            fields.update(Context=context, Exten=exten, Priority=priority)
        fields.update(
            CallerID=caller_id,
            ChannelId=channel_id,
            Timeout=int(timeout_ms),
            Async=True,
            Variable=[_variable(k, v) for k, v in (variables or {}).items()] or None,
        )
        # Registered before sending: the OriginateResponse may come right behind the response.
        outcome = self._originates[action_id] = asyncio.get_running_loop().create_future()
        try:
            response = await self.action("Originate", ActionID=action_id, timeout=response_timeout, **fields)
        except BaseException:
            self._forget_originate(action_id, outcome)
            raise
        if not response.ok:
            self._forget_originate(action_id, outcome)
            raise AMIActionError(
                f"Originate {action_id} refused: {response.get('Message', 'no message')}", response
            )
        log.debug("originate %s queued to %s", action_id, masked_channel(channel))
        return action_id

    async def wait_originate(self, action_id: str, timeout: float | None = None) -> OriginateResult:
        """The outcome of an Originate sent by `originate()`, once its OriginateResponse arrived.

        Raises TimeoutError after `timeout` (the Originate stays awaitable: call again), and
        AMIConnectionLost when the connection dropped first: the outcome is then unknown. (An
        Asterisk that shuts down cleanly reports its calls first: Failure, reason 0.)
        """
        outcome = self._originates.get(action_id)
        if outcome is None:
            raise KeyError(f"no Originate with ActionID {action_id} is awaited (sent by originate()?)")
        async with asyncio.timeout(timeout):
            await asyncio.wait([outcome])  # unlike awaiting it, a timeout here leaves `outcome` intact
        self._originates.pop(action_id, None)
        return OriginateResult.from_event(outcome.result())  # or raises AMIConnectionLost

    # -- events --

    def events(self, *names: str, maxsize: int = 10000) -> EventStream:
        """A stream of events (only `names`, if given), subscribed now; ends when the client closes."""
        stream = EventStream(self, frozenset(names), maxsize)
        if self._fatal is not None:
            stream._offer(self._fatal)
        elif self._closing:
            stream._offer(_END)
        else:
            self._streams.add(stream)
        return stream

    # -- internals: the connection --

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect, read the banner and log in; the returned streams are logged in."""
        where = f"{self.host}:{self.port}"
        try:
            async with asyncio.timeout(self._connect_timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port, limit=LINE_LIMIT)
        except (OSError, TimeoutError) as exc:
            raise AMIConnectionLost(f"cannot reach AMI at {where}: {exc or type(exc).__name__}") from exc
        try:
            async with asyncio.timeout(self._connect_timeout):
                banner = (await reader.readline()).decode("utf-8", "replace").strip()
                if not banner.startswith("Asterisk Call Manager"):
                    raise AMIConnectionLost(f"{where} is not an AMI (first line {banner[:40]!r})")
                login_id = self.next_action_id()
                writer.write(
                    encode_action(
                        [
                            ("Action", "Login"),
                            ("ActionID", login_id),
                            ("Username", self.username),
                            ("Secret", self._secret),
                            ("Events", self._event_filter),
                        ]
                    )
                )
                await writer.drain()
                while True:
                    message = await self._read_message(reader)
                    if message is None:
                        raise AMIConnectionLost(f"AMI at {where} closed the connection during login")
                    if message.is_response and message.action_id == login_id:
                        break
                    self._dispatch(message)
            if message.ok and self._waits_for_boot:
                await self._until_fully_booted(reader, where)
        except BaseException as exc:
            writer.close()
            if isinstance(exc, (OSError, TimeoutError)) and not isinstance(exc, AMIError):
                raise AMIConnectionLost(f"AMI login at {where} failed: {exc or type(exc).__name__}") from exc
            raise
        if not message.ok:
            writer.close()
            raise AMIAuthError(
                f"AMI at {where} refused the login of user {self.username!r}: "
                f"{message.get('Message', 'no reason given')} — check the AMI username and secret "
                "(manager_users.conf) and the user's permit/deny"
            )
        self.banner = banner
        self._writer = writer
        self._connected.set()
        log.info("AMI connected to %s as %s (%s)", where, self.username, banner)
        return reader, writer

    async def _until_fully_booted(self, reader: asyncio.StreamReader, where: str) -> None:
        """Wait for `FullyBooted`: sent right after the login once Asterisk has booted, else when it has.

        An Asterisk that was just started accepts AMI logins before its dialplan is loaded; an
        Originate then fails with "PBX requires Asterisk to be fully booted" (seen on 22.10.1
        after a restart), which would look like a failed call. Not connected until booted.
        """
        try:
            async with asyncio.timeout(self._boot_timeout):
                while True:
                    message = await self._read_message(reader)
                    if message is None:
                        raise AMIConnectionLost(
                            f"AMI at {where} closed the connection before Asterisk had booted"
                        )
                    self._dispatch(message)
                    if message.name == "FullyBooted":
                        return
        except TimeoutError:
            raise AMIConnectionLost(
                f"Asterisk at {where} did not finish booting within {self._boot_timeout:.0f} s"
            ) from None

    async def _open_with_backoff(
        self, *, wait_first: bool
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        delays = itertools.chain(self._delays, itertools.repeat(self._delays[-1]))
        if wait_first:
            await asyncio.sleep(next(delays))
        while True:
            try:
                return await self._open()
            except AMIAuthError:
                if not self._retry_auth_errors:
                    raise
                log.warning("AMI login refused by %s:%s; retrying (retry_auth_errors)", self.host, self.port)
            except AMIConnectionLost as exc:
                log.info("AMI not reachable yet: %s", exc)
            await asyncio.sleep(next(delays))

    async def _supervise(self, reader: asyncio.StreamReader) -> None:
        """Read until the connection drops, then reconnect; runs until close() or a refused login."""
        while True:
            reason = await self._read_until_lost(reader)
            if self._closing:
                return
            self._drop_connection()
            failed = self._fail_waiting(
                AMIConnectionLost(f"AMI connection to {self.host}:{self.port} lost: {reason}")
            )
            log.warning(
                "AMI connection to %s:%s lost (%s); %d waiting failed; reconnecting",
                self.host,
                self.port,
                reason,
                failed,
            )
            try:
                reader, _ = await self._open_with_backoff(wait_first=True)
            except AMIAuthError as exc:
                log.error("AMI gave up reconnecting: %s", exc)
                self._give_up(exc)
                return
            self.reconnects += 1
            self._run_hook(self.on_reconnect)

    def _supervisor_done(self, task: asyncio.Task) -> None:
        if task.cancelled() or task.exception() is None:
            return
        # A bug in the reader: say so loudly and fail fast rather than look connected but deaf.
        log.error("AMI reader stopped on an unexpected error", exc_info=task.exception())
        self._give_up(AMIConnectionLost(f"the AMI reader stopped: {task.exception()!r}"))

    def _give_up(self, error: AMIError) -> None:
        """End the client for good: what waits fails, event streams raise `error`."""
        self._fatal = error
        self._drop_connection()
        self._fail_waiting(AMIConnectionLost(str(error)))
        for stream in list(self._streams):
            stream._offer(error)
        self._streams.clear()

    async def _read_until_lost(self, reader: asyncio.StreamReader) -> str:
        """Dispatch messages until the connection ends; returns why it ended."""
        try:
            while True:
                message = await self._read_message(reader)
                if message is None:
                    return "closed by Asterisk"
                self._dispatch(message)
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"

    async def _read_message(self, reader: asyncio.StreamReader) -> Message | None:
        """The next message (fields up to a blank line), or None at the end of the stream."""
        fields: list[tuple[str, str]] = []
        while True:
            try:
                raw = await reader.readline()
            except ValueError:  # longer than LINE_LIMIT; asyncio has discarded it
                self.garbage_lines += 1
                log.warning("AMI sent a line over %d bytes; skipped", LINE_LIMIT)
                continue
            if not raw:
                return None
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line.strip():
                if fields:
                    return Message(fields)
                continue
            field = parse_line(line)
            if field is None:
                self.garbage_lines += 1
                log.debug("AMI line without a field skipped (%d bytes)", len(raw))
                continue
            fields.append(field)

    async def _send(self, wire: bytes) -> None:
        if self._fatal is not None:
            raise AMIConnectionLost(f"the AMI client gave up: {self._fatal}")
        if not self.connected or self._writer is None:
            raise AMINotSent(f"not connected to AMI at {self.host}:{self.port}")
        async with self._write_lock:
            writer = self._writer
            if writer is None:  # dropped while this send waited for the lock
                raise AMINotSent(f"not connected to AMI at {self.host}:{self.port}")
            try:
                writer.write(wire)
                await writer.drain()
            except OSError as exc:
                raise AMIConnectionLost(
                    f"AMI connection to {self.host}:{self.port} lost while sending"
                ) from exc

    def _drop_connection(self) -> None:
        if self._connected is not None:
            self._connected.clear()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    def _fail_waiting(self, error: AMIConnectionLost) -> int:
        """Fail every waiting action and Originate outcome with `error`; returns how many."""
        failed = 0
        for future in [p.future for p in self._pending.values()] + list(self._originates.values()):
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: no "never retrieved" noise for abandoned waits
                failed += 1
        return failed

    def _forget_originate(self, action_id: str, outcome: asyncio.Future) -> None:
        self._originates.pop(action_id, None)
        if not outcome.done():
            outcome.cancel()

    def _raise_if_finished(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        if self._closing:
            raise AMIConnectionLost("the AMI client was closed")

    # -- internals: routing what arrives --

    def _dispatch(self, message: Message) -> None:
        action_id = message.action_id
        pending = self._pending.get(action_id) if action_id else None
        if message.is_response:
            if pending is None or pending.response is not None:
                log.debug("AMI response for no waiting action (ActionID %s)", action_id)
            elif message.get("EventList", "").lower() == "start":
                pending.response = message  # the list's events follow, then its ...Complete
            elif not pending.future.done():
                pending.future.set_result(message)
            return
        if not message.is_event:
            log.debug("AMI message that is neither a response nor an event skipped")
            return
        if pending is not None and pending.collecting:
            if message.get("EventList", "").lower() == "complete" or message.name.endswith("Complete"):
                pending.response.complete = message
                pending.future.set_result(pending.response)
            else:
                pending.response.events.append(message)
            return
        if message.name == "OriginateResponse" and action_id in self._originates:
            outcome = self._originates[action_id]
            if not outcome.done():
                outcome.set_result(message)
            log.debug(
                "originate %s: %s reason %s uniqueid %s",
                action_id,
                message.get("Response"),
                message.get("Reason"),
                message.get("Uniqueid"),
            )
        for stream in list(self._streams):
            stream._offer(message)
        if self.on_event is not None:
            self._run_hook(self.on_event, message)

    def _run_hook(self, hook: Callable[..., Any] | None, *args: Any) -> None:
        """Call a user hook; a coroutine runs as a task. A failing hook is logged, never fatal."""
        if hook is None:
            return
        try:
            result = hook(*args)
        except Exception:  # a bug in a hook must not stop the reader every call depends on
            log.exception("AMI hook %s failed", getattr(hook, "__qualname__", hook))
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._hook_tasks.add(task)
            task.add_done_callback(self._hook_done)

    def _hook_done(self, task: asyncio.Task) -> None:
        self._hook_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("AMI hook failed", exc_info=task.exception())


def _flatten(fields: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            for item in value:
                yield key, item
        else:
            yield key, value


def _variable(name: str, value: Any) -> str:
    """One `Variable:` line for Originate: NAME=value, the value escaped for Asterisk's parser.

    Asterisk splits a `Variable:` value at commas like dialplan arguments, dropping quotes and
    backslashes (seen on 22.10.1: `a,b c` arrived as `a`); a backslash keeps the next character.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"not a channel variable name: {name!r}")
    return f"{name}=" + re.sub(r'([\\",()])', r"\\\1", _wire_value(value))
