"""The dialer: one Originate into dialplans/alert.conf [alert-call], followed to its outcome.

Originate: Channel `dial_string(call)`, Context alert-call, Exten s, CallerID VOICE_CALLER_ID,
Timeout VOICE_RING_SECONDS, channel variables BN_MESSAGE_ID and BN_AUDIO (the audio as Asterisk
sees it). The OriginateResponse's Reason decides: 4 answered; 5 busy, 3 no answer, 8 congestion →
retry; anything else → failed "call failed: <reason> (reason n)".

A call holds its line until its channel has hung up, not until its outcome came: the cap counts
channels. The dialer names the channel itself (ChannelId "bn-<message id>-<random>", its
Uniqueid), so its events are known from the first one on. The OriginateResponse comes straight
from Asterisk's originating thread and the channel's events through Stasis, so on a busy Asterisk
an outcome can overtake even the Newchannel: a channel nothing was heard of is looked up by
Uniqueid and waited for if it exists. Safety timeouts (`call_timeout`, `failed_channel_grace`
after a failure) bound the wait.

Asterisk restarts (tests/test_voice_worker.py restarts the real one mid-action): the AMI client
reconnects by itself and counts as connected only once Asterisk has fully booted. The bound is
*at most one call per attempt*:
- nobody was called → `again` (placed after the reconnect, not an attempt): the Originate could
  not be sent, Asterisk refused it ("Asterisk is shutting down"), or it failed with reason 0 and
  no channel while Asterisk was stopping. A stopping Asterisk refuses at once: no hammering it;
- it rang and Asterisk hung it up as it stopped (reason 0/1 with a channel) → an attempt like a
  busy line: "cut off (Asterisk restarted)", retried within VOICE_RETRIES;
- the outcome was lost with the connection → failed "outcome unknown (Asterisk restarted)", never
  placed again: it may have rung. Rare: a stopping Asterisk reports its calls before it closes;
- answered → stays answered (the IVR records how far they listened before the line dropped).
"Stopping" is decided by a Ping at once (refused with "Asterisk is shutting down" from the start
of `core stop`), as the Shutdown event and the closed connection may come seconds later, and is
remembered for that AMI connection: no Originate goes out on it afterwards. After a reconnect,
calls whose channels no longer exist are treated as ended, so their lines come back.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .ami import AMIActionError, AMIClient, AMIConnectionLost, AMIError, AMINotSent, Message
from .outcomes import OutcomeWriter
from .store import VoiceCall

log = logging.getLogger(__name__)

CONTEXT = "alert-call"
RETRY_REASONS = {5: "busy", 3: "no answer", 8: "congestion"}
OUTCOME_UNKNOWN = "outcome unknown (Asterisk restarted)"
CUT_OFF = "cut off (Asterisk restarted)"
DEFAULT_CALL_TIMEOUT = 3600.0  # an answered call may be put through to the centralist (a tip)
FAILED_CHANNEL_GRACE = 10.0


class OutcomeKind(enum.Enum):
    answered = "answered"  # recorded already (the IVR refines the detail)
    retry = "retry"  # busy, no answer, congestion, cut off: an attempt; may be called again
    failed = "failed"  # final
    again = "again"  # nobody was called: place it again, not counted as an attempt


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    detail: str
    uniqueid: str | None = None  # of the call's channel, when it had one


@dataclass
class Attempt:
    """One Originate and its channel, whose Uniqueid the dialer chose (the Originate's ChannelId)."""

    message_id: int
    uniqueid: str
    made: bool = False  # Asterisk announced the channel (Newchannel or Hangup): a phone may have rung
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # the channel hung up (or never was)

    @classmethod
    def of(cls, message_id: int) -> Attempt:
        # Unique per attempt: it is also the IVR's agi_uniqueid, the key of a tip from this call.
        return cls(message_id, f"bn-{message_id}-{secrets.token_hex(6)}")


class Dialer:
    """Places calls through one AMI client and follows each to the end of its channel; writes the
    dispatch mark before each Originate and an answer as soon as it is known (`outcomes`)."""

    def __init__(
        self,
        ami: AMIClient,
        dial_string: Callable[[VoiceCall], str],
        outcomes: OutcomeWriter,
        stats: Counter[str],
        *,
        caller_id: str | None,
        ring_seconds: int,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        failed_channel_grace: float = FAILED_CHANNEL_GRACE,
    ) -> None:
        self.ami, self.dial_string, self.outcomes, self.stats = ami, dial_string, outcomes, stats
        self.caller_id, self.ring_seconds = caller_id, ring_seconds
        self.call_timeout, self.failed_channel_grace = call_timeout, failed_channel_grace
        self._owner: dict[str, Attempt] = {}  # channel Uniqueid → its Originate, until the channel hung up
        self._stopping_on = -1  # the AMI connection (`ami.reconnects`) whose Asterisk is known to be stopping
        self._reconnected = asyncio.Event()  # set (and replaced) at each reconnect
        # Chain onto the client's hooks: ours see Newchannel/Hangup synchronously, in wire order.
        ami.on_event = _chain(self._on_event, ami.on_event)
        ami.on_reconnect = _chain(self._on_reconnect, ami.on_reconnect)

    async def call(self, call: VoiceCall, audio: str) -> Outcome:
        """One Originate, on the caller's line, until its channel has hung up (or never was)."""
        await self._until_placeable()
        attempt = Attempt.of(call.message_id)
        self._owner[attempt.uniqueid] = attempt  # before the Originate: its events may come first
        try:
            return await self._originate(call, audio, attempt)
        finally:
            self._owner.pop(attempt.uniqueid, None)

    async def _originate(self, call: VoiceCall, audio: str, attempt: Attempt) -> Outcome:
        connection = self.ami.reconnects  # which AMI connection this Originate went out on
        await self.outcomes.dispatched(call)  # committed before the Originate goes out
        try:
            self.stats["originates"] += 1
            action_id = await self.ami.originate(
                self.dial_string(call),
                context=CONTEXT,
                exten="s",
                caller_id=self.caller_id,
                variables={"BN_MESSAGE_ID": call.message_id, "BN_AUDIO": audio},
                timeout_ms=self.ring_seconds * 1000,
                channel_id=attempt.uniqueid,
            )
            result = await self.ami.wait_originate(action_id, timeout=self.ring_seconds + 60)
        except AMINotSent:  # the connection was gone before the Originate went out
            return Outcome(OutcomeKind.again, "not connected to Asterisk")
        except AMIActionError as exc:  # refused outright: no channel, nobody called
            refusal = exc.response.get("Message", "no reason")
            if await self._asterisk_stopping(connection, refusal):
                return Outcome(OutcomeKind.again, "Asterisk is shutting down")
            return Outcome(OutcomeKind.failed, f"Originate refused: {refusal}"[:200])
        except (AMIConnectionLost, TimeoutError):
            log.warning("voice message %d: Originate outcome lost; not calling again", call.message_id)
            return Outcome(OutcomeKind.failed, OUTCOME_UNKNOWN, attempt.uniqueid if attempt.made else None)
        attempt.made = attempt.made or result.success  # answered: its channel exists, whatever the events say
        uniqueid = attempt.uniqueid if attempt.made else None
        if attempt.made:
            self.stats["placed"] += 1
        if not result.success and result.reason == 0 and not attempt.made:
            # No channel was made, so no phone rang. A stopping Asterisk refuses every channel
            # and then drops the connection: such a call is placed again after the reconnect.
            if await self._asterisk_stopping(connection):
                return Outcome(OutcomeKind.again, "Asterisk is shutting down")
        elif not result.success and result.reason in (0, 1) and await self._asterisk_stopping(connection):
            # It rang, and Asterisk hung it up as it stopped: an attempt like a busy line, so
            # retried (within VOICE_RETRIES) but never placed again as if it had not rung.
            await self._until_ended(attempt, self.failed_channel_grace)
            return Outcome(OutcomeKind.retry, CUT_OFF, uniqueid)
        if result.success:
            await self.outcomes.answered(call, uniqueid)  # recorded at once; the line stays held
            await self._until_ended(attempt, self.call_timeout)
            return Outcome(OutcomeKind.answered, "answered", uniqueid)
        await self._until_ended(attempt, self.failed_channel_grace)
        if result.reason in RETRY_REASONS:
            return Outcome(OutcomeKind.retry, RETRY_REASONS[result.reason], uniqueid)
        return Outcome(
            OutcomeKind.failed, f"call failed: {result.reason_text} (reason {result.reason})", uniqueid
        )

    async def _asterisk_stopping(self, connection: int, refusal: str = "") -> bool:
        """Whether a call that failed was failed because Asterisk is stopping; remembered per connection.

        Asterisk 22.10.1, once `core stop` began, hangs up every channel (a ringing Originate
        fails with reason 0) and refuses every AMI action with "Asterisk is shutting down"; its
        Shutdown event and the dropped connection may follow only seconds later (modules unload
        first). So the refusal of a Ping is the answer, asked right away.
        """
        stopping = await self._ask_stopping(connection, refusal)
        if stopping:
            self._stopping_on = max(self._stopping_on, connection)
        return stopping

    async def _ask_stopping(self, connection: int, refusal: str) -> bool:
        if "shutting down" in refusal.lower():
            return True
        if self._stopping_on == connection or not self.ami.connected or self.ami.reconnects != connection:
            return True
        try:
            response = await self.ami.action("Ping", timeout=10)
        except AMIConnectionLost:
            return True
        except TimeoutError:  # an Asterisk too busy to answer a Ping is not stopping on purpose
            return False
        return not response.ok and "shutting down" in response.get("Message", "").lower()

    async def _until_placeable(self) -> None:
        """Until an Originate can go out: connected, and not to an Asterisk known to be stopping.

        The line a cut-off call frees must not go to the next call while the same Asterisk is
        still winding down: that Originate may be answered by nothing but the dropped connection,
        and its outcome is then unknown — a participant who gets no call at all.
        """
        await self.ami.wait_connected()  # not placed while Asterisk is away: placed after the reconnect
        while self._stopping_on == self.ami.reconnects:
            await self._until_reconnected(self._stopping_on)
            await self.ami.wait_connected()

    async def _until_reconnected(self, connection: int) -> None:
        """Until the AMI client has a connection newer than `connection` (it reconnects by itself)."""
        while self.ami.reconnects == connection:
            changed = self._reconnected
            try:
                await asyncio.wait_for(changed.wait(), 5)
            except TimeoutError:
                if not self.ami.connected:
                    await self.ami.wait_connected()  # raises the error that ended the client, if one did

    async def _until_ended(self, attempt: Attempt, timeout: float) -> None:
        """Until the attempt's channel hung up (at most `timeout`): the cap counts channels.

        A channel nothing was heard of is looked up (by Uniqueid), and waited for only if it exists.
        """
        if attempt.ended.is_set() or not (attempt.made or await self._exists(attempt.uniqueid)):
            return
        try:
            await asyncio.wait_for(attempt.ended.wait(), timeout)
        except TimeoutError:
            log.warning(
                "voice message %d: no Hangup within %.0f s; freeing its line", attempt.message_id, timeout
            )

    async def _exists(self, uniqueid: str) -> bool:
        """Whether Asterisk has a channel with this Uniqueid now; True when it cannot tell."""
        try:
            response = await self.ami.action("Getvar", Channel=uniqueid, Variable="BN_MESSAGE_ID", timeout=10)
        except (AMIError, TimeoutError):
            return True
        return response.ok or "no such channel" not in response.get("Message", "").lower()

    # -- AMI events --

    def _on_event(self, event: Message) -> None:
        name = event.name
        if name == "Newchannel":
            attempt = self._owner.get(event.get("Uniqueid", ""))
            if attempt is not None:
                attempt.made = True
        elif name == "Hangup":
            attempt = self._owner.pop(event.get("Uniqueid", ""), None)
            if attempt is not None:
                attempt.made = True
                attempt.ended.set()
        elif name == "Shutdown":
            self._stopping_on = self.ami.reconnects

    async def _on_reconnect(self) -> None:
        """Events were lost with the connection: calls whose channels are gone have ended."""
        self._reconnected.set()
        self._reconnected = asyncio.Event()
        if not self._owner:
            return
        try:
            listing = await self.ami.action("CoreShowChannels")
        except (AMIError, TimeoutError):
            return  # the safety timeouts still free the lines
        alive = {event.get("Uniqueid") for event in listing.events}
        for uniqueid, attempt in list(self._owner.items()):
            if uniqueid not in alive:
                del self._owner[uniqueid]
                attempt.ended.set()


def _chain(first: Callable[..., Any], second: Callable[..., Any] | None) -> Callable[..., Any]:
    if second is None:
        return first

    def both(*args: Any) -> Any:
        first(*args)
        return second(*args)

    return both
