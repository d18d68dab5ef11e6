"""The voice worker: spoken alerts as AMI Originates, the open actions sharing the lines by urgency.

The worker protocol is gateway/outbox.py's: consume message ids from the "voice" queue, claim them
in SQL (queued → sending, attempts + 1 — the only way to own a message, so a duplicated queue
entry never rings anybody twice), commit, ack the entries, then call. A message is taken only
when a line is free for it, from the flow the scheduler picks: the open actions share the lines
by urgency (gateway/queue/schedule.py), and a retry waiting for a line is weighed with its
action's flow — so one action's busy numbers never hold the lines another action needs, and a
newly launched action's first call goes out at the next free line.

The parts, in the order a message meets them:
- this loop: what waits (the queue's flows and the retries), lines taken, messages claimed;
- `lines`: the cap on simultaneous calls, shared through Redis by every voice worker process;
- `caller`: one message to the end — audio (`audio`), calls and retries;
- `dialer`: one Originate followed to the end of its channel, Asterisk restarts included;
- `outcomes` and `store`: what happened, written to the database (all the SQL is in `store`).

A crashed voice worker: every claim is a lease of this worker (`worker_id`), renewed while the
worker has the message in hand (gateway/queue/lease.py, as for SMS); each Originate is preceded
by the dispatch mark. When a lease is not renewed for VOICE_LEASE_SECONDS — the worker died, or
its claim committed while the answer was lost, or a bug ended the message's task — any voice
worker returns the message to the queue; the next claim places the undialled ones and fails the
dialled ones as "outcome unknown (voice worker stopped)": at most one call per attempt. Its lines
lapse after the same time. A failed take (database or Redis away) is tried again after a second.

Stopping (`stop` set): nothing new is claimed; calls and retries already under way finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from gateway.errors import brief
from gateway.queue import DEFAULT_PREFIX, Intake, RedisStreamQueue, WorkQueue, keep_up, upkeep, worker_id
from gateway.queue.base import Plan, oldest_first
from gateway.queue.flows import planner
from gateway.tts import AudioCache

from .ami import AMIClient
from .audio import BulletinAudio
from .caller import Caller
from .dialer import CUT_OFF, DEFAULT_CALL_TIMEOUT, FAILED_CHANNEL_GRACE, OUTCOME_UNKNOWN, Dialer
from .lines import Line, LinePool, Lines, LocalPool, RedisPool
from .outcomes import OutcomeWriter
from .store import WORKER_STOPPED, VoiceCall, VoiceStore

if TYPE_CHECKING:
    from gateway.config import Settings

log = logging.getLogger(__name__)

CHANNEL = "voice"

__all__ = ["CUT_OFF", "OUTCOME_UNKNOWN", "WORKER_STOPPED", "VoiceCall", "VoiceWorker", "run_voice_worker"]


def line_key(prefix: str = DEFAULT_PREFIX) -> str:
    """The Redis key of the shared lines (a sorted set of leases)."""
    return f"{prefix}voice:lines"


class VoiceWorker:
    """Takes voice messages when lines are free, in the scheduler's order, and calls them."""

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
        lines: LinePool | None = None,
    ) -> None:
        if max_calls < 1 or retries < 0 or retry_delay < 0 or ring_seconds <= 0:
            raise ValueError("max_calls >= 1, retries >= 0, retry_delay >= 0 and ring_seconds > 0 please")
        self.queue, self.ami, self.plan = queue, ami, plan
        self.max_calls = max_calls
        self.worker, self.lease_seconds = worker or worker_id(CHANNEL), lease_seconds
        # originates, placed, answered, retries, failed, unknown, again (a seam for metrics)
        self.stats: Counter[str] = Counter()
        self.store = VoiceStore(sessions, self.worker)
        self.intake = Intake(queue, CHANNEL, self.worker, plan)  # the queue's consumer: this process
        self.lines = Lines(lines or LocalPool(), max_calls, self.worker)
        outcomes = OutcomeWriter(self.store)
        dial_string = dial_string or (lambda call: dial_template.format(number=call.phone))
        dialer = Dialer(
            ami,
            dial_string,
            outcomes,
            self.stats,
            caller_id=caller_id or None,
            ring_seconds=ring_seconds,
            call_timeout=call_timeout,
            failed_channel_grace=failed_channel_grace,
        )
        self.caller = Caller(
            BulletinAudio(audio, asterisk_audio_dir),
            dialer,
            outcomes,
            self.stats,
            retries=retries,
            retry_delay=retry_delay,
        )
        self._in_hand: set[int] = set()  # ids of the messages claimed and not yet done with (their leases)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        sessions: sessionmaker[Session],
        queue: WorkQueue,
        ami: AMIClient,
        audio: AudioCache,
        **kw: Any,
    ) -> VoiceWorker:
        """The worker as configured; with REDIS_URL its lines are shared with the other voice workers."""
        options: dict[str, Any] = {
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
        if settings.redis_url and "lines" not in options:
            prefix = queue.prefix if isinstance(queue, RedisStreamQueue) else DEFAULT_PREFIX
            owner = options.get("worker") or worker_id(CHANNEL)
            options["lines"] = RedisPool(
                settings.redis_url, line_key(prefix), options["lease_seconds"], owner
            )
        return cls(sessions, queue, ami, audio, **options)

    # -- the loop --

    async def run(self, stop: asyncio.Event | None = None, poll_ms: int = 500) -> None:
        """Take and call until `stop` is set; then let what is under way finish.

        `poll_ms`: how often it looks again while nothing waits, or every line is taken (a line
        another worker gives back is seen this late at most; one of this worker's at once).
        """
        stop = stop or asyncio.Event()
        poll = poll_ms / 1000
        tasks: set[asyncio.Task] = set()
        upkeep_tasks = [
            asyncio.create_task(
                keep_up(self.keep_leases, lambda: list(self._in_hand), self.lease_seconds, "voice worker"),
                name="voice leases",
            ),
            asyncio.create_task(self._keep_lines(), name="voice lines"),
        ]
        try:
            while not stop.is_set() or tasks:
                self.lines.changed.clear()
                stopping = stop.is_set()  # nothing new; retries under way still get their lines
                try:
                    if await self._start_calls(tasks, retries_only=stopping):
                        continue
                except Exception as exc:
                    # Nothing is lost: a claim that failed left its messages queued (gateway.queue.Intake).
                    log.warning("voice worker: taking messages failed (%s); trying again in 1 s", brief(exc))
                    await asyncio.sleep(1)
                    continue
                if stopping:
                    await _until(self.lines.changed.wait(), asyncio.sleep(poll), *tasks)
                else:
                    await _until(self.lines.changed.wait(), stop.wait(), asyncio.sleep(poll))
        finally:
            for task in upkeep_tasks:
                task.cancel()
            await self.lines.pool.close()

    async def _start_calls(self, tasks: set[asyncio.Task], retries_only: bool) -> int:
        """Fill the free lines: the scheduler weighs the queue's flows together with the retries
        waiting for a line; the lines it gives to retries are given here, the rest go to messages
        taken from the queue. Returns how many calls started (0: nothing to do, or no line)."""
        retries = self.lines.waiting()
        queued = Counter() if retries_only else Counter(await asyncio.to_thread(self.queue.waiting, CHANNEL))
        wanted = queued + retries
        if not wanted:
            return 0
        leases = await self.lines.take(sum(wanted.values()))
        if not leases:
            return 0
        try:
            calls: list[VoiceCall] = []
            if retries_only:
                to_retries = oldest_first(retries, len(leases))
            else:  # one thread hop: the worker's threads also write every call's outcome
                to_retries, calls = await asyncio.to_thread(
                    self._plan_and_claim, wanted, retries, len(leases)
                )
            for flow in to_retries:
                self.lines.give(flow, leases.pop())
            for call in calls:
                self._start(call, Line(self.lines, leases.pop()), tasks)
            return len(to_retries) + len(calls)
        finally:
            await self.lines.release(leases)  # taken, but nothing came to use them

    def _plan_and_claim(
        self, wanted: Counter[int], retries: Counter[int], count: int
    ) -> tuple[list[int], list[VoiceCall]]:
        """The plan's order for `count` lines: the flows of the retries it picked, and the
        messages claimed from the queue for the rest (in a thread)."""
        to_retries: list[int] = []
        from_queue: list[int] = []
        for flow in self.plan(wanted, count):
            if retries[flow]:
                retries[flow] -= 1
                to_retries.append(flow)
            else:
                from_queue.append(flow)
        if not from_queue:
            return to_retries, []
        return to_retries, self.intake.take(len(from_queue), 0, self._claim, lambda _w, _n: from_queue)

    def _start(self, call: VoiceCall, line: Line, tasks: set[asyncio.Task]) -> None:
        self._in_hand.add(call.message_id)
        task = asyncio.create_task(self._deliver(call, line), name=f"voice-message-{call.message_id}")
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _deliver(self, call: VoiceCall, line: Line) -> None:
        """One message to the end (gateway/voice/caller.py); its line given back however it ends."""
        try:
            await self.caller.deliver(call, line)
        except Exception:  # a bug must not take the other calls down; the message's lease runs out
            log.exception("voice message %d: unexpected error", call.message_id)
        finally:
            self._in_hand.discard(call.message_id)
            await line.release()

    def _claim(self, message_ids: list[int]) -> list[VoiceCall]:
        claimed = self.store.claim(message_ids)
        self.stats["failed"] += claimed.stopped
        return claimed.calls

    def keep_leases(self, holding: list[int]) -> None:
        """Renew the leases of the messages in hand (`holding`): a claim committed whose answer was
        lost leaves messages `sending` in this worker's name that it never had, and those must run
        out and go again. Queue again what a stopped voice worker left `sending`."""
        requeued = upkeep(self.store.sessions, self.queue, CHANNEL, self.worker, self.lease_seconds, holding)
        if requeued.total:
            log.warning(
                "voice: %d message(s) of a stopped worker queued again (%d had been dialled: "
                "recorded as outcome unknown, not called again)",
                requeued.total,
                requeued.dispatched,
            )

    async def _keep_lines(self) -> None:
        """Renew the leases on the lines of the calls under way, every quarter lease."""
        while True:
            await asyncio.sleep(self.lease_seconds / 4)
            await self.lines.renew()


async def _until(*waits: Coroutine[Any, Any, Any] | asyncio.Task) -> None:
    """Until the first of these is done: coroutines (cancelled after) or the calls' tasks (left running)."""
    own = [asyncio.ensure_future(w) for w in waits if asyncio.iscoroutine(w)]
    try:
        await asyncio.wait(
            [*own, *(w for w in waits if isinstance(w, asyncio.Task))], return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for wait in own:
            wait.cancel()


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
