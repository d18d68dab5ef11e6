"""The SMS worker's intake: takes messages from the "sms" queue as the binds have room for them.

The protocol is gateway/outbox.py's: consume ids, `claim()` them in SQL (queued → sending, leased
to this worker, `dispatched_at` set), commit, ack the queue entries, then send. RULE: a worker
holds no backlog of its own — it takes a lookahead's worth of its binds' contracted rate at a
time; the order of the actions is decided at the queue (gateway/queue/schedule.py).
"""

from __future__ import annotations

import asyncio
import logging
import math

from sqlalchemy.orm import Session, sessionmaker

from gateway.errors import brief
from gateway.queue import Intake, WorkQueue
from gateway.queue.base import Plan

from .bind import Bind
from .dispatch import Dispatcher
from .store import Claimed, claim_sms

log = logging.getLogger(__name__)

CHANNEL = "sms"
# How much a worker holds claimed and not yet written, in seconds of its binds' contracted rate:
# enough to keep sending between two takes, little enough that a newly launched action's first
# messages (planned first at the next take) go out within a second behind any backlog.
LOOKAHEAD_S = 0.25
DISPATCH_SLICE = 50  # claimed messages handed to the binds per turn of the event loop
TAKE_AT_MOST = 500  # queue entries read per round trip


class SmsIntake:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        queue: WorkQueue,
        worker_id: str,
        plan: Plan,
        binds: dict[str, Bind],
        dispatcher: Dispatcher,
        open_messages: dict[int, Claimed],
        max_open: int,
    ) -> None:
        self.sessions = sessions
        self.worker_id = worker_id
        self.binds = binds
        self.dispatcher = dispatcher
        self.open = open_messages  # claimed and unfinished, by message id
        self.max_open = max_open
        self.queue_intake = Intake(queue, CHANNEL, worker_id, plan)
        self._texts: dict[int, str] = {}  # bulletin id → its SMS text (claim_sms reads each once)
        self._room = asyncio.Event()

    def room_made(self) -> None:
        """Something finished, or a bind came up: look again whether to take more."""
        self._room.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            room = self.room_to_take()
            if room <= 0 or not any(b.up for b in self.binds.values()):
                self._room.clear()
                try:
                    await asyncio.wait_for(self._room.wait(), LOOKAHEAD_S / 5)
                except TimeoutError:
                    pass
                continue
            try:
                claimed = await asyncio.to_thread(self.queue_intake.take, room, TAKE_AT_MOST, self._claim)
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
                up = self.dispatcher.up()
                for item in claimed[start : start + DISPATCH_SLICE]:
                    self.dispatcher.dispatch(item, up=up)

    def room_to_take(self) -> int:
        """How many to take now: the lookahead's worth less what is claimed and not yet written —
        and nothing until half of it is used up, so that a take is worth its round trips."""
        lookahead = 0
        for bind in self.binds.values():
            if bind.up:
                rate = bind.config.rate_per_second
                lookahead += math.ceil(rate * LOOKAHEAD_S) if rate else self.max_open
        lookahead = min(lookahead, self.max_open - len(self.open))
        unwritten = sum(len(b.ready) for b in self.binds.values()) + len(self.dispatcher.parked)
        return lookahead - unwritten if unwritten * 2 <= lookahead else 0

    def _claim(self, message_ids: list[int]) -> list[Claimed]:
        return claim_sms(self.sessions, message_ids, self.worker_id, self._texts)
