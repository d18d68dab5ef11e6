"""The voice channel worker: spoken alerts as AMI Originates into dialplans/alert.conf [alert-call].

The worker protocol is gateway/outbox.py's: consume message ids from the "voice" queue, `claim()`
them in SQL (queued → sending, attempts + 1 — the only way to own a message, so a duplicated queue
entry never rings anybody twice), commit, ack the entries, then call. A message is taken only
when a line is free for it (gateway/voice/lines.py), from the flow the scheduler picks: the open
actions share the lines by urgency (gateway/queue/schedule.py), and a retry waiting for a line
is weighed with its action's flow — so one action's busy numbers never hold the lines another
action needs, and a newly launched action's first call goes out at the next free line.

Per message:

1. Audio: the bulletin's `spoken_text` in the participant's language through `AudioCache.ensure`,
   run in a thread once per (bulletin, language) per process; every later call of that bulletin
   reuses the result without touching the disk. No audio → failed "audio unavailable: …".
2. A line (one of `max_calls`) is held from the take until the call has ended: when the
   Originate's channel had its `Hangup` event. The worker
   names that channel itself (ChannelId "bn-<message id>-<random>", its Uniqueid), so its events
   are known from the first one on. A failed Originate may be reported before its channel is gone,
   and its outcome can even overtake the channel's Newchannel (the OriginateResponse does not pass
   through Stasis): a channel nothing was heard of is looked up by Uniqueid and waited for if it
   exists. The cap counts channels, not outcomes. A safety timeout (`call_timeout`,
   `failed_channel_grace` after a failure) bounds the wait.
3. Originate: Channel `dial_string(call)` (default: VOICE_DIAL_TEMPLATE with {number} = the E.164
   number), Context alert-call, Exten s, CallerID VOICE_CALLER_ID, Timeout VOICE_RING_SECONDS,
   channel variables BN_MESSAGE_ID and BN_AUDIO (the audio path as Asterisk sees it).
4. Outcome (OriginateResponse Reason): 4 answered → status answered, detail "answered", final_at,
   provider_id = the Uniqueid; the IVR ([alert-call], `alert_call`) then refines detail ("listened
   to the end", …; an answering machine: `alert_voicemail`, "voicemail: message left"). Every write of the worker is guarded by `status = 'sending' AND final_at IS
   NULL`, so it never overwrites what the IVR already recorded. 5 busy, 3 no answer, 8 congestion
   → retried (below); anything else → failed "call failed: <reason> (reason n)".

Retries: the worker keeps the message `sending` and calls again itself after
VOICE_RETRY_DELAY_SECONDS (the line is free meanwhile, and the retry then waits for the loop to
give it one), at most VOICE_RETRIES more times. Each
retry first increments `attempts` in one guarded UPDATE that also requires the action to be still
open and not past `expires_at` — so no retry is ever placed after the action closed — unless the
message is the closing bulletin itself (its action is closed by definition). Requeueing was not
chosen: `claim()` would count the attempt too, and a queued message is cancelled by a close,
losing the "busy" outcome. The final detail says what happened: "busy after 3 attempts", "no
answer after 2 attempts; not retried: the action closed". `attempts` counts the Originates.

Asterisk restarts (tests/test_voice_worker.py restarts the real one mid-action, counting rings at
the phones' side): the AMI client reconnects by itself and counts as connected only once Asterisk
has fully booted. The bound is *at most one call per attempt*:
- nobody was called → placed again after the reconnect, not counted as an attempt: the Originate
  could not be sent (no connection), Asterisk refused it ("Asterisk is shutting down"), or it
  failed with reason 0 and no channel while Asterisk was stopping. The call then waits for the
  next connection (a stopping Asterisk refuses at once: no hammering it meanwhile);
- it rang and Asterisk hung it up as it stopped (reason 0/1 with a channel) → an attempt like a
  busy line: "cut off (Asterisk restarted)", retried within VOICE_RETRIES while the action is open;
- the outcome was lost with the connection (sent, no OriginateResponse) → failed "outcome unknown
  (Asterisk restarted)", never placed again: it may have rung. The price: that participant may
  get no call at all. Rare: a stopping Asterisk reports its calls before it closes.
- answered → stays answered (the IVR records how far they listened before the line dropped).
"Stopping" is decided by a Ping at once (refused with "Asterisk is shutting down" from the start
of `core stop`), as the Shutdown event and the closed connection may come seconds later, and is
remembered for that AMI connection: no Originate goes out on it afterwards, so the slots the
cut-off calls free wait for the reconnect instead of sending into a dying connection. After a
reconnect, calls whose channels no longer exist are treated as ended, so their slots come back.

A crashed voice worker: every claim is a lease of this worker (`worker_id`), renewed while the
worker has the message in hand (gateway/queue/lease.py, as for SMS). Each Originate is preceded
by the dispatch mark. When a lease is not renewed for VOICE_LEASE_SECONDS — the worker died, or
its claim committed while the answer was lost, or a bug ended the message's task — any voice
worker returns the message to the queue; the next claim places the undialled ones and fails the
dialled ones as "outcome unknown (voice worker stopped)" — the same rule as a lost Originate
outcome: at most one call per attempt. A failed take (database or Redis away) is tried again
after a second; the worker keeps running.

Stopping (`stop` set): nothing new is claimed; calls and retry waits already under way finish.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from gateway.errors import brief
from gateway.queue import (
    REQUEUED_DISPATCHED_DETAIL,
    Intake,
    WorkQueue,
    claim,
    keep_up,
    mark_dispatched,
    upkeep,
    worker_id,
)
from gateway.queue.base import Plan, oldest_first
from gateway.queue.flows import planner
from gateway.storage.models import (
    Action,
    ActionStatus,
    Bulletin,
    BulletinKind,
    Message,
    MessageStatus,
    Participant,
)
from gateway.tts import AudioCache, AudioResult
from gateway.voice.ami import AMIActionError, AMIClient, AMIConnectionLost, AMIError, AMINotSent
from gateway.voice.lines import Line, Lines

if TYPE_CHECKING:
    from gateway.config import Settings

log = logging.getLogger(__name__)

CHANNEL = "voice"
CONTEXT = "alert-call"
RETRY_REASONS = {5: "busy", 3: "no answer", 8: "congestion"}
OUTCOME_UNKNOWN = "outcome unknown (Asterisk restarted)"
WORKER_STOPPED = "outcome unknown (voice worker stopped)"
CUT_OFF = "cut off (Asterisk restarted)"
DEFAULT_CALL_TIMEOUT = 3600.0  # an answered call may be put through to the centralist (a tip)
FAILED_CHANNEL_GRACE = 10.0
WRITE_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)  # seconds, between tries of a write the database refused


@dataclass(frozen=True)
class VoiceCall:
    """A claimed voice message, with what calling it needs."""

    message_id: int
    phone: str  # E.164
    action_id: int
    bulletin_id: int
    text: str
    language: str
    attempts: int  # the message's `attempts` as claimed (this attempt included)


@dataclass
class _Attempt:
    """One Originate and its channel, whose Uniqueid the worker chose (the Originate's ChannelId)."""

    message_id: int
    uniqueid: str
    made: bool = False  # Asterisk announced the channel (Newchannel or Hangup): a phone may have rung
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # the channel hung up (or never was)

    @classmethod
    def of(cls, message_id: int) -> _Attempt:
        # Unique per attempt: it is also the IVR's agi_uniqueid, the key of a tip from this call.
        return cls(message_id, f"bn-{message_id}-{secrets.token_hex(6)}")


@dataclass(frozen=True)
class _Outcome:
    kind: str  # "answered", "retry", "failed", "again" (nobody was called: place it again)
    detail: str
    uniqueid: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


class VoiceWorker:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        queue: WorkQueue,
        ami: AMIClient,
        audio: AudioCache,
        *,
        dial_template: str = "PJSIP/{number}@trunk",
        dial_string: Callable[[VoiceCall], str] | None = None,
        caller_id: str | None = "Burgernet <0880000000>",
        max_calls: int = 20,
        ring_seconds: int = 30,
        retries: int = 2,
        retry_delay: float = 60.0,
        asterisk_audio_dir: str = "",
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        failed_channel_grace: float = FAILED_CHANNEL_GRACE,
        worker: str | None = None,
        lease_seconds: float = 60.0,
        plan: Plan = oldest_first,
    ) -> None:
        if max_calls < 1 or retries < 0 or retry_delay < 0 or ring_seconds <= 0:
            raise ValueError("max_calls >= 1, retries >= 0, retry_delay >= 0 and ring_seconds > 0 please")
        self.sessions, self.queue, self.ami, self.audio = sessions, queue, ami, audio
        self.dial_template = dial_template
        self.dial_string = dial_string or (lambda call: self.dial_template.format(number=call.phone))
        self.caller_id, self.max_calls, self.ring_seconds = caller_id or None, max_calls, ring_seconds
        self.retries, self.retry_delay = retries, retry_delay
        self.asterisk_audio_dir = asterisk_audio_dir.rstrip("/")
        self.call_timeout, self.failed_channel_grace = call_timeout, failed_channel_grace
        self.worker, self.lease_seconds = worker or worker_id(CHANNEL), lease_seconds
        self.stats: Counter[str] = Counter()  # originates, placed, answered, retries, failed, unknown, again
        self.plan = plan
        self.intake = Intake(
            queue, CHANNEL, self.worker, plan
        )  # the queue's consumer: this process, as for SMS
        self._in_hand: set[int] = set()  # ids of the messages claimed and not yet done with (their leases)
        self.lines = Lines(max_calls)
        self._audio: dict[tuple[int, str], asyncio.Future[AudioResult]] = {}
        self._owner: dict[str, _Attempt] = {}  # channel Uniqueid → its Originate, until the channel hung up
        self._stopping_on = -1  # the AMI connection (`ami.reconnects`) whose Asterisk is known to be stopping
        self._reconnected = asyncio.Event()  # set (and replaced) at each reconnect
        # Chain onto the client's hooks: ours see Newchannel/Hangup synchronously, in wire order.
        previous_event, previous_reconnect = ami.on_event, ami.on_reconnect
        ami.on_event = self._chain(self._on_event, previous_event)
        ami.on_reconnect = self._chain(self._on_reconnect, previous_reconnect)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        sessions: sessionmaker[Session],
        queue: WorkQueue,
        ami: AMIClient,
        audio: AudioCache,
        **kw,
    ) -> VoiceWorker:
        options = {
            "dial_template": settings.voice_dial_template,
            "caller_id": settings.voice_caller_id,
            "max_calls": settings.voice_max_calls,
            "ring_seconds": settings.voice_ring_seconds,
            "retries": settings.voice_retries,
            "retry_delay": settings.voice_retry_delay_seconds,
            "asterisk_audio_dir": settings.voice_asterisk_audio_dir,
            "lease_seconds": settings.voice_lease_seconds,
            "plan": planner(sessions, settings.schedule_weights),
        }
        options.update(kw)
        return cls(sessions, queue, ami, audio, **options)

    @staticmethod
    def _chain(first: Callable, second: Callable | None) -> Callable:
        if second is None:
            return first

        def both(*args):
            first(*args)
            return second(*args)

        return both

    # -- the loop --

    async def run(self, stop: asyncio.Event | None = None, poll_ms: int = 500) -> None:
        """Consume, claim and call until `stop` is set; then let what is under way finish."""
        stop = stop or asyncio.Event()
        tasks: set[asyncio.Task] = set()
        leases = asyncio.create_task(
            keep_up(self.keep_leases, lambda: list(self._in_hand), self.lease_seconds, "voice worker"),
            name="voice leases",
        )
        while not stop.is_set() or tasks:
            self.lines.changed.clear()
            if stop.is_set():  # nothing new; retries under way still get their lines
                self._give_lines(oldest_first(self.lines.waiting(), self.lines.free))
                await self._until(self.lines.changed.wait(), *tasks)
                continue
            if not self.lines.free:
                await self._until(self.lines.changed.wait(), stop.wait())
                continue
            try:
                calls = await self._next_calls(poll_ms)
            except Exception as exc:
                # Nothing is lost: a claim that failed left its messages queued (gateway.queue.Intake).
                log.warning("voice worker: taking messages failed (%s); trying again in 1 s", brief(exc))
                await asyncio.sleep(1)
                continue
            for call in calls:
                self.lines.take()
                self._in_hand.add(call.message_id)
                task = asyncio.create_task(self._deliver(call), name=f"voice-message-{call.message_id}")
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        leases.cancel()

    async def _next_calls(self, poll_ms: int) -> list[VoiceCall]:
        """Fill the free lines: the scheduler weighs the queue's flows together with the retries
        waiting for a line; the lines it gives to retries are given here, the rest are taken."""
        retries = self.lines.waiting()
        if not retries:
            return await asyncio.to_thread(self.intake.take, self.lines.free, poll_ms, self._claim)
        waiting = await asyncio.to_thread(self.queue.waiting, CHANNEL)
        order = await asyncio.to_thread(self.plan, Counter(waiting) + retries, self.lines.free)
        from_queue: list[int] = []
        for flow in order:
            if retries[flow]:
                retries[flow] -= 1
                self.lines.give(flow)
            else:
                from_queue.append(flow)
        if not from_queue:
            return []
        return await asyncio.to_thread(
            self.intake.take, len(from_queue), 0, self._claim, lambda _w, _n: from_queue
        )

    def _give_lines(self, flows: list[int]) -> None:
        for flow in flows:
            self.lines.give(flow)

    @staticmethod
    async def _until(*waits) -> None:
        """Until the first of these is done: coroutines (cancelled after) or the calls' tasks (left running)."""
        own = [asyncio.ensure_future(w) for w in waits if asyncio.iscoroutine(w)]
        try:
            await asyncio.wait(
                [*own, *(w for w in waits if not asyncio.iscoroutine(w))], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for wait in own:
                wait.cancel()

    def keep_leases(self, holding: list[int]) -> None:
        """Renew the leases of the messages in hand (`holding`): a claim committed whose answer was
        lost leaves messages `sending` in this worker's name that it never had, and those must run
        out and go again. Queue again what a stopped voice worker left `sending`."""
        requeued = upkeep(self.sessions, self.queue, CHANNEL, self.worker, self.lease_seconds, holding)
        if requeued.total:
            log.warning(
                "voice: %d message(s) of a stopped worker queued again (%d had been dialled: "
                "recorded as outcome unknown, not called again)",
                requeued.total,
                requeued.dispatched,
            )

    def _claim(self, message_ids: list[int]) -> list[VoiceCall]:
        # One transaction, the rows read before its commit: only a commit whose answer was lost leaves
        # messages claimed that the worker does not have (their leases then run out: keep_leases).
        with self.sessions() as session, session.begin():
            owned = claim(session, message_ids, worker=self.worker)
            if not owned:
                return []
            rows = session.execute(
                select(
                    Message.id,
                    Message.phone,
                    Message.action_id,
                    Message.bulletin_id,
                    Bulletin.spoken_text,
                    Participant.language,
                    Message.attempts,
                    Message.detail,
                )
                .join(Bulletin, Bulletin.id == Message.bulletin_id)
                .outerjoin(Participant, Participant.id == Message.participant_id)
                .where(Message.id.in_(owned))
                .order_by(Message.id)
            ).all()
        # RULE: at most one call per attempt — a stopped worker may have dialled these already.
        dialled = [row.id for row in rows if row.detail == REQUEUED_DISPATCHED_DETAIL]
        for message_id in dialled:
            self._finish(message_id, MessageStatus.failed, WORKER_STOPPED, None)
        self.stats["failed"] += len(dialled)
        return [
            VoiceCall(mid, phone, aid, bid, text, language or "nl", attempts)
            for mid, phone, aid, bid, text, language, attempts, detail in rows
            if detail != REQUEUED_DISPATCHED_DETAIL
        ]

    # -- one message --

    async def _deliver(self, call: VoiceCall) -> None:
        """One message to the end, on the line the loop gave it (given back however it ends)."""
        line = Line(self.lines)
        try:
            await self._deliver_unguarded(call, line)
        except Exception:  # a bug must not take the other calls down; the message's lease runs out
            log.exception("voice message %d: unexpected error", call.message_id)
        finally:
            self._in_hand.discard(call.message_id)
            line.release()

    async def _deliver_unguarded(self, call: VoiceCall, line: Line) -> None:
        try:
            audio = await self._audio_for(call)
        except Exception as exc:
            await self._write(
                self._finish, call.message_id, MessageStatus.failed, f"audio unavailable: {exc}", None
            )
            self.stats["failed"] += 1
            return
        tries = 0
        while True:
            tries += 1
            outcome = await self._call_once(call, audio)
            if outcome.kind == "again":  # nobody was called: placed once Asterisk is back (_until_placeable)
                self.stats["again"] += 1
                tries -= 1
                continue
            if outcome.kind == "answered":
                self.stats["answered"] += 1
                return  # recorded inside the slot, as soon as it was known
            if outcome.kind == "failed":
                self.stats["unknown" if outcome.detail == OUTCOME_UNKNOWN else "failed"] += 1
                await self._write(
                    self._finish, call.message_id, MessageStatus.failed, outcome.detail, outcome.uniqueid
                )
                return
            done = f"{outcome.detail} after {tries} attempt{'s' if tries > 1 else ''}"
            if tries > self.retries:
                self.stats["failed"] += 1
                await self._write(self._finish, call.message_id, MessageStatus.failed, done, outcome.uniqueid)
                return
            await self._write(
                self._note, call.message_id, f"{outcome.detail} (attempt {tries}); retrying", outcome.uniqueid
            )
            # RULE: a retry holds no line while it waits; then it waits its flow's turn for one.
            line.release()
            await asyncio.sleep(self.retry_delay)
            await line.wait(call.bulletin_id)
            allowed = await self._write(self._begin_retry, call.message_id, call.attempts + tries - 1)
            if allowed is None:  # no longer ours (finished or cancelled elsewhere)
                return
            if not allowed:
                self.stats["failed"] += 1
                await self._write(
                    self._finish,
                    call.message_id,
                    MessageStatus.failed,
                    f"{done}; not retried: the action closed",
                    None,
                )
                return
            self.stats["retries"] += 1

    async def _audio_for(self, call: VoiceCall) -> str:
        key = (call.bulletin_id, call.language)
        future = self._audio.get(key)
        if future is None:
            future = self._audio[key] = asyncio.ensure_future(
                asyncio.to_thread(self.audio.ensure, call.bulletin_id, call.text, call.language)
            )
        try:
            result = await asyncio.shield(future)
        except Exception:
            if self._audio.get(key) is future:
                del self._audio[key]  # the next message of this bulletin tries again
            raise
        if self.asterisk_audio_dir:
            return str(PurePosixPath(self.asterisk_audio_dir) / result.path.stem)
        return result.playback_name

    async def _call_once(self, call: VoiceCall, audio: str) -> _Outcome:
        """One Originate, on the caller's line, until its channel has hung up (or never was)."""
        await self._until_placeable()
        attempt = _Attempt.of(call.message_id)
        self._owner[attempt.uniqueid] = attempt  # before the Originate: its events may come first
        try:
            return await self._originate(call, audio, attempt)
        finally:
            self._owner.pop(attempt.uniqueid, None)

    async def _originate(self, call: VoiceCall, audio: str, attempt: _Attempt) -> _Outcome:
        connection = self.ami.reconnects  # which AMI connection this Originate went out on
        await self._write(self._mark_dispatched, call.message_id)
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
            return _Outcome("again", "not connected to Asterisk")
        except AMIActionError as exc:  # refused outright: no channel, nobody called
            refusal = exc.response.get("Message", "no reason")
            if await self._asterisk_stopping(connection, refusal):
                return _Outcome("again", "Asterisk is shutting down")
            return _Outcome("failed", f"Originate refused: {refusal}"[:200])
        except (AMIConnectionLost, TimeoutError):
            log.warning("voice message %d: Originate outcome lost; not calling again", call.message_id)
            return _Outcome("failed", OUTCOME_UNKNOWN, attempt.uniqueid if attempt.made else None)
        attempt.made = attempt.made or result.success  # answered: its channel exists, whatever the events say
        uniqueid = attempt.uniqueid if attempt.made else None
        if attempt.made:
            self.stats["placed"] += 1
        if not result.success and result.reason == 0 and not attempt.made:
            # No channel was made, so no phone rang. A stopping Asterisk refuses every channel
            # and then drops the connection: such a call is placed again after the reconnect.
            if await self._asterisk_stopping(connection):
                return _Outcome("again", "Asterisk is shutting down")
        elif not result.success and result.reason in (0, 1) and await self._asterisk_stopping(connection):
            # It rang, and Asterisk hung it up as it stopped: an attempt like a busy line, so
            # retried (within VOICE_RETRIES) but never placed again as if it had not rung.
            await self._until_ended(attempt, self.failed_channel_grace)
            return _Outcome("retry", CUT_OFF, uniqueid)
        if result.success:
            await self._write(self._answered, call.message_id, uniqueid)
            await self._until_ended(attempt, self.call_timeout)
            return _Outcome("answered", "answered", uniqueid)
        await self._until_ended(attempt, self.failed_channel_grace)
        if result.reason in RETRY_REASONS:
            return _Outcome("retry", RETRY_REASONS[result.reason], uniqueid)
        return _Outcome("failed", f"call failed: {result.reason_text} (reason {result.reason})", uniqueid)

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

        The slot a cut-off call frees must not go to the next call while the same Asterisk is
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

    async def _until_ended(self, attempt: _Attempt, timeout: float) -> None:
        """Until the attempt's channel hung up (at most `timeout`): the cap counts channels.

        The OriginateResponse comes straight from the originating thread, the channel's events
        through Stasis: on a busy Asterisk the outcome can overtake even the Newchannel. A channel
        nothing was heard of is looked up (by Uniqueid), and waited for only if it exists.
        """
        if attempt.ended.is_set() or not (attempt.made or await self._exists(attempt.uniqueid)):
            return
        try:
            await asyncio.wait_for(attempt.ended.wait(), timeout)
        except TimeoutError:
            log.warning(
                "voice message %d: no Hangup within %.0f s; freeing its call slot",
                attempt.message_id,
                timeout,
            )

    async def _exists(self, uniqueid: str) -> bool:
        """Whether Asterisk has a channel with this Uniqueid now; True when it cannot tell."""
        try:
            response = await self.ami.action("Getvar", Channel=uniqueid, Variable="BN_MESSAGE_ID", timeout=10)
        except (AMIError, TimeoutError):
            return True
        return response.ok or "no such channel" not in response.get("Message", "").lower()

    # -- AMI events --

    def _on_event(self, event) -> None:
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
            return  # the safety timeouts still free the slots
        alive = {event.get("Uniqueid") for event in listing.events}
        for uniqueid, attempt in list(self._owner.items()):
            if uniqueid not in alive:
                del self._owner[uniqueid]
                attempt.ended.set()

    # -- the database (each in a thread) --

    async def _write(self, fn: Callable, *args):
        """`fn(*args)` in a thread, tried again while the database is unreachable (a restart, a
        failover: up to ~15 s): an answered call's outcome must not be lost to a dropped
        connection. Every write here is guarded, so a repeat whose first try did commit changes
        nothing."""
        for delay in (*WRITE_RETRY_DELAYS, None):
            try:
                return await asyncio.to_thread(fn, *args)
            except OperationalError as exc:
                if delay is None:
                    raise
                log.warning(
                    "voice worker: database write failed (%s); trying again in %.1f s", brief(exc), delay
                )
                await asyncio.sleep(delay)

    def _guarded(self, message_id: int):
        return update(Message).where(
            Message.id == message_id, Message.status == MessageStatus.sending, Message.final_at.is_(None)
        )

    def _mark_dispatched(self, message_id: int) -> None:
        with self.sessions() as session, session.begin():  # committed before the Originate goes out
            mark_dispatched(session, [message_id], self.worker)

    def _answered(self, message_id: int, uniqueid: str | None) -> None:
        now = _now()
        with self.sessions() as session, session.begin():
            session.execute(
                update(Message)
                .where(Message.id == message_id)
                .values(provider_id=uniqueid, sent_at=func.coalesce(Message.sent_at, now))
            )
            session.execute(
                self._guarded(message_id).values(
                    status=MessageStatus.answered, detail="answered", final_at=now
                )
            )

    def _finish(self, message_id: int, status: MessageStatus, detail: str, uniqueid: str | None) -> None:
        now = _now()
        values = {
            "status": status,
            "detail": detail[:200],
            "final_at": now,
            "sent_at": func.coalesce(Message.sent_at, now),
        }
        if uniqueid:
            values["provider_id"] = uniqueid
        with self.sessions() as session, session.begin():
            session.execute(self._guarded(message_id).values(**values))

    def _note(self, message_id: int, detail: str, uniqueid: str | None) -> None:
        now = _now()
        values = {"detail": detail[:200], "sent_at": func.coalesce(Message.sent_at, now)}
        if uniqueid:
            values["provider_id"] = uniqueid
        with self.sessions() as session, session.begin():
            session.execute(self._guarded(message_id).values(**values))

    def _begin_retry(self, message_id: int, counted: int) -> bool | None:
        """Count the next attempt if a retry is allowed: True; the action closed: False; the
        message is no longer ours to send: None. `counted`: the attempts so far — the update sets
        `counted + 1`, so a repeat after a commit whose answer was lost counts nothing twice."""
        now = _now()
        still_open = (
            select(Action.id)
            .where(
                Action.id == Message.action_id,
                Action.status == ActionStatus.open,
                or_(Action.expires_at.is_(None), Action.expires_at > now),
            )
            .exists()
        )
        closing = (
            select(Bulletin.id)
            .where(Bulletin.id == Message.bulletin_id, Bulletin.kind == BulletinKind.closing)
            .exists()
        )
        with self.sessions() as session, session.begin():
            changed = session.execute(
                self._guarded(message_id)
                .where(Message.attempts.in_((counted, counted + 1)), or_(still_open, closing))
                .values(attempts=counted + 1)
            ).rowcount
            if changed:
                return True
            ours = session.scalar(
                select(
                    exists().where(
                        Message.id == message_id,
                        Message.status == MessageStatus.sending,
                        Message.final_at.is_(None),
                    )
                )
            )
        return False if ours else None


async def run_voice_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """`burgernet worker voice`: the worker on the configured database, Redis queue and Asterisk."""
    from gateway.queue import make_queue
    from gateway.storage.db import make_engine, session_factory

    if not settings.ami_secret:
        raise ValueError(
            "AMI_SECRET is empty: set the secret of the AMI user AMI_USER (asterisk/manager_users.conf)"
        )
    if not settings.redis_url:
        raise ValueError(
            "REDIS_URL is empty: the voice worker runs in its own process and needs the Redis queue"
        )
    engine = make_engine(settings.sqlalchemy_url)
    queue = make_queue(settings.redis_url)
    ami = AMIClient(settings.ami_host, settings.ami_port, settings.ami_user, settings.ami_secret)
    worker = VoiceWorker.from_settings(
        settings, session_factory(engine), queue, ami, AudioCache.from_settings(settings)
    )
    if stop is None:  # SIGTERM/SIGINT: stop claiming, let the calls under way finish
        import signal

        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await ami.connect(retry=True)
    try:
        await worker.run(stop)
    finally:
        await ami.close()
        queue.close()
        engine.dispose()
