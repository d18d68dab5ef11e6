"""The AMI connection: logged in, kept up, and each action's response routed back to its sender.

One TCP connection to one Asterisk at a time. `connect()` opens it and logs in; a supervisor task
reads every message and, when the connection drops (Asterisk restarts), fails whatever was waiting
at once with `AMIConnectionLost` — the caller decides whether to retry, as only it knows whether a
second call is acceptable — and reconnects in the background with backoff. A refused login raises
`AMIAuthError` and is never retried unless asked (`retry_auth_errors`): a wrong secret does not
fix itself.

Keepalive: a connection can die without a word (a firewall dropping idle state, a host that went
away, an Asterisk that hangs): reads then simply stop, and every Originate would wait in vain. So
an AMI `Ping` goes out every `keepalive` seconds; one not answered within `keepalive_timeout` cuts
the connection, which fails what waits and reconnects as for any dropped connection.

Every action gets a generated ActionID, unique across reconnects and across processes sharing
one Asterisk; its response — for an event-list action (`CoreShowChannels`…) with the list's
events — comes back to the coroutine that sent it. Every other event goes to `_event`, where the
client (gateway/voice/ami/client.py) hands it out. Nothing here logs the secret.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .login import Login, log_in
from .wire import (
    AMIAuthError,
    AMIConnectionLost,
    AMIError,
    AMINotSent,
    Message,
    encode_action,
    flatten,
    read_message,
)

log = logging.getLogger(__name__)

DEFAULT_RECONNECT_DELAY = (0.5, 1, 2, 5, 10)  # seconds; the last one repeats
DEFAULT_KEEPALIVE = 20.0  # seconds between Pings
DEFAULT_KEEPALIVE_TIMEOUT = 10.0  # seconds a Ping may take before the connection is cut

ReconnectHook = Callable[[], Awaitable[None] | None]


class _Pending:
    """An action waiting for its response (and, for an event list, for the list's end)."""

    __slots__ = ("future", "response")

    def __init__(self) -> None:
        self.future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.response: Message | None = None

    @property
    def collecting(self) -> bool:
        return self.response is not None and not self.future.done()


class AMIConnection:
    """One Asterisk's AMI, logged in and kept up; `action()` sends and returns the response.

    `events` is the Login's event filter: "on" (everything), "off", or classes such as "call".
    `keepalive`: seconds between Pings (0: none).
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        reconnect_delay: Iterable[float] = DEFAULT_RECONNECT_DELAY,
        on_reconnect: ReconnectHook | None = None,
        events: str = "on",
        retry_auth_errors: bool = False,
        connect_timeout: float = 10.0,
        action_timeout: float = 30.0,
        boot_timeout: float = 120.0,
        keepalive: float = DEFAULT_KEEPALIVE,
        keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT,
    ):
        self.host, self.port, self.username = host, port, username
        self._login = Login(host, port, username, secret, events, connect_timeout, boot_timeout)
        self._delays = tuple(reconnect_delay) or (1.0,)
        self.on_reconnect = on_reconnect
        self._retry_auth_errors = retry_auth_errors
        self._action_timeout = action_timeout
        self._keepalive, self._keepalive_timeout = keepalive, keepalive_timeout
        # ActionIDs unique across this client's reconnects and across processes sharing Asterisk.
        self._id_prefix = f"bn-{secrets.token_hex(4)}"
        self._ids = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._hook_tasks: set[asyncio.Task] = set()
        self._writer: asyncio.StreamWriter | None = None
        self._write_lock: asyncio.Lock | None = None
        self._supervisor: asyncio.Task | None = None
        self._connected: asyncio.Event | None = None
        self._closing = False
        self._fatal: AMIError | None = None
        self._silent: str | None = None  # why the keepalive cut the connection
        self.banner: str | None = None
        self.garbage_lines = 0  # lines that were not `Key: value`, skipped
        self.reconnects = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.username}@{self.host}:{self.port} connected={self.connected}>"

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
            raise RuntimeError(f"{type(self).__name__}.connect() was already called")
        self._connected = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._closing = False
        if retry:
            reader = await self._open_with_backoff(wait_first=False)
        else:
            reader = await self._open()
        self._supervisor = asyncio.create_task(self._supervise(reader), name=f"ami-{self.host}:{self.port}")
        self._supervisor.add_done_callback(self._supervisor_done)

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Return once logged in (again); raises TimeoutError, or the error that ended the client."""
        if self._connected is None:
            raise RuntimeError(f"{type(self).__name__}.connect() was never called")
        self._raise_if_finished()
        waiter = asyncio.create_task(self._connected.wait())
        watched: list[asyncio.Task] = [waiter] + ([self._supervisor] if self._supervisor is not None else [])
        try:
            async with asyncio.timeout(timeout):
                while not self.connected:
                    await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                    self._raise_if_finished()
        finally:
            waiter.cancel()

    async def close(self) -> None:
        """Log off, close the connection; waiting actions fail."""
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
        self._ended(None)
        if self._hook_tasks:  # hooks still running get a moment to finish, then are cancelled
            _, unfinished = await asyncio.wait(self._hook_tasks, timeout=2)
            for task in unfinished:
                task.cancel()

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
        wire = encode_action([("Action", name), ("ActionID", action_id), *flatten(fields)])
        if action_id in self._pending:
            raise ValueError(f"ActionID {action_id} is already waiting for a response")
        pending = self._pending[action_id] = _Pending()
        try:
            await self._send(wire)
            async with asyncio.timeout(self._action_timeout if timeout is None else timeout):
                return await pending.future
        finally:
            self._pending.pop(action_id, None)

    # -- what the client adds (gateway/voice/ami/client.py) --

    def _event(self, message: Message) -> None:
        """An event that answers no action of ours (it may still tell an Originate's outcome)."""

    def _ended(self, error: AMIError | None) -> None:
        """The client is done: closed (None) or given up for good (`error`)."""

    # -- opening and logging in --

    async def _open(self) -> asyncio.StreamReader:
        """Connect and log in (gateway/voice/ami/login.py); returns the connection's reader."""
        reader, writer, self.banner = await log_in(
            self._login, self.next_action_id(), self._read, self._receive
        )
        self._writer = writer
        assert self._connected is not None
        self._connected.set()
        log.info("AMI connected to %s:%s as %s (%s)", self.host, self.port, self.username, self.banner)
        return reader

    async def _open_with_backoff(self, *, wait_first: bool) -> asyncio.StreamReader:
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

    # -- keeping it up --

    async def _supervise(self, reader: asyncio.StreamReader) -> None:
        """Read until the connection drops, then reconnect; runs until close() or a refused login."""
        while True:
            pinging = asyncio.create_task(self._keep_alive(self._writer), name="ami-keepalive")
            try:
                reason = await self._read_until_lost(reader)
            finally:
                pinging.cancel()
            if self._closing:
                return
            reason, self._silent = self._silent or reason, None
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
                reader = await self._open_with_backoff(wait_first=True)
            except AMIAuthError as exc:
                log.error("AMI gave up reconnecting: %s", exc)
                self._give_up(exc)
                return
            self.reconnects += 1
            self._run_hook(self.on_reconnect)

    async def _keep_alive(self, writer: asyncio.StreamWriter | None) -> None:
        """Ping every `keepalive` seconds; cut the connection if a Ping goes unanswered.

        The whole Ping is timed, sending included: a peer that stopped reading fills the socket's
        buffer, and the send would wait as long as the answer.
        """
        if not self._keepalive or writer is None:
            return
        while True:
            await asyncio.sleep(self._keepalive)
            try:
                await asyncio.wait_for(self.action("Ping"), self._keepalive_timeout)
            except TimeoutError:
                if self._writer is writer and not self._closing:
                    self._silent = f"no answer to a keepalive Ping within {self._keepalive_timeout:g} s"
                    log.warning("AMI at %s:%s: %s; reconnecting", self.host, self.port, self._silent)
                    writer.transport.abort()  # the reader sees the end of the stream: reconnect
                return
            except AMIConnectionLost:
                return  # dropped anyway: the supervisor reconnects

    def _supervisor_done(self, task: asyncio.Task) -> None:
        if task.cancelled() or task.exception() is None:
            return
        # A bug in the reader: say so loudly and fail fast rather than look connected but deaf.
        log.error("AMI reader stopped on an unexpected error", exc_info=task.exception())
        self._give_up(AMIConnectionLost(f"the AMI reader stopped: {task.exception()!r}"))

    def _give_up(self, error: AMIError) -> None:
        """End the client for good: what waits fails with `error`."""
        self._fatal = error
        self._drop_connection()
        self._fail_waiting(AMIConnectionLost(str(error)))
        self._ended(error)

    def _drop_connection(self) -> None:
        if self._connected is not None:
            self._connected.clear()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    def _fail_waiting(self, error: AMIConnectionLost) -> int:
        """Fail every waiting action with `error`; returns how many."""
        return fail_all([p.future for p in self._pending.values()], error)

    def _raise_if_finished(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        if self._closing:
            raise AMIConnectionLost("the AMI client was closed")

    # -- reading and writing --

    async def _read_until_lost(self, reader: asyncio.StreamReader) -> str:
        """Hand out messages until the connection ends; returns why it ended."""
        try:
            while True:
                message = await self._read(reader)
                if message is None:
                    return "closed by Asterisk"
                self._receive(message)
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"

    async def _read(self, reader: asyncio.StreamReader) -> Message | None:
        return await read_message(reader, self._skipped)

    def _skipped(self) -> None:
        self.garbage_lines += 1

    async def _send(self, wire: bytes) -> None:
        if self._fatal is not None:
            raise AMIConnectionLost(f"the AMI client gave up: {self._fatal}")
        if not self.connected or self._writer is None or self._write_lock is None:
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

    def _receive(self, message: Message) -> None:
        """A response (or event-list event) to the action waiting for it; any other event on."""
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
        if pending is not None and pending.response is not None and pending.collecting:
            if message.get("EventList", "").lower() == "complete" or (message.name or "").endswith(
                "Complete"
            ):
                pending.response.complete = message
                pending.future.set_result(pending.response)
            else:
                pending.response.events.append(message)
            return
        self._event(message)

    # -- hooks --

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


def fail_all(futures: Iterable[asyncio.Future], error: AMIConnectionLost) -> int:
    """Fail each of these futures not done yet with `error`; returns how many."""
    failed = 0
    for future in futures:
        if not future.done():
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" noise for abandoned waits
            failed += 1
    return failed
