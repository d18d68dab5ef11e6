"""The AMI client: actions, Originates with their outcomes, and events for whoever listens.

Our own client on asyncio streams rather than pyst2's `asterisk.manager`: the voice worker is
asyncio and keeps hundreds of `Originate`s with `Async: true` in flight, each answered much later
by an `OriginateResponse` event that only its ActionID ties back to the call. pyst2's manager runs
its own reader thread, correlates nothing but the immediate response, and keeps only the last line
of a multi-line `Output`. Here `originate()` / `wait_originate()` give each call its own outcome,
`events()` gives each subscriber its own bounded stream, and `on_event` sees every event
synchronously, in wire order. The connection underneath (login, reconnects, keepalive, responses
by ActionID) is gateway/voice/ami/connection.py; the wire format gateway/voice/ami/wire.py.

Nothing here logs the secret, a channel name or a caller ID in full: logs carry ActionIDs and
Uniqueids; a channel, when it must appear, is masked (`masked_channel`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .connection import AMIConnection, fail_all
from .wire import (
    AMIActionError,
    AMIConnectionLost,
    AMIError,
    Message,
    OriginateResult,
    channel_variable,
    masked_channel,
)

log = logging.getLogger(__name__)

EventCallback = Callable[[Message], Awaitable[None] | None]

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


class AMIClient(AMIConnection):
    """An asyncio AMI client for one Asterisk: actions by ActionID, events, Originate outcomes.

    Takes AMIConnection's options (reconnect_delay, events, keepalive, …); Originate outcomes
    need the `call` event class.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        on_event: EventCallback | None = None,
        **options: Any,
    ):
        super().__init__(host, port, username, secret, **options)
        self.on_event = on_event
        self._originates: dict[str, asyncio.Future[Message]] = {}
        self._streams: set[EventStream] = set()

    async def __aenter__(self) -> AMIClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

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
            Variable=[channel_variable(k, v) for k, v in (variables or {}).items()] or None,
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

    # -- what the connection hands over --

    def _event(self, message: Message) -> None:
        action_id = message.action_id
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

    def _fail_waiting(self, error: AMIConnectionLost) -> int:
        """Fail every waiting action and Originate outcome with `error`; returns how many."""
        return super()._fail_waiting(error) + fail_all(self._originates.values(), error)

    def _ended(self, error: AMIError | None) -> None:
        """Event streams end (closed) or raise `error` (given up)."""
        for stream in list(self._streams):
            if error is None:
                stream.close()
            else:
                stream._offer(error)
        self._streams.clear()

    def _forget_originate(self, action_id: str, outcome: asyncio.Future) -> None:
        self._originates.pop(action_id, None)
        if not outcome.done():
            outcome.cancel()
