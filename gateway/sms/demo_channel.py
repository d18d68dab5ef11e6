"""The SMS channel of `make demo`: the real worker against the local SMSC simulator.

The simulator (tests/smsc/simulator.js, node-smpp) is used when node and its npm packages are
installed (`make demo` installs them, as `make test` does); otherwise the demo falls back to the
dry-run outbox. The worker runs in a thread with its own event loop, on the demo's database and
in-process queue.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import threading
import time
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.queue import WorkQueue
from gateway.queue.flows import FlowPlanner
from gateway.queue.schedule import Scheduler
from gateway.storage.models import Channel, Message, MessageStatus

from .binds import load_sms_config
from .worker import SmsWorker

log = logging.getLogger(__name__)
SIMULATOR = Path(__file__).resolve().parents[2] / "tests" / "smsc_sim.py"


class DemoSms:
    """A started simulator plus a running SMS worker; `stop()` ends both."""

    def __init__(
        self, sessions: sessionmaker[Session], queue: WorkQueue, sender: str, max_parts: int
    ) -> None:
        spec = importlib.util.spec_from_file_location("smsc_sim", SIMULATOR)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        self.sim = module.SmscSimulator().start()
        self.sessions = sessions
        binds = json.dumps(
            [
                {
                    "name": "demo",
                    "operator": "simulator",
                    "port": self.sim.port,
                    "system_id": self.sim.system_id,
                    "password": self.sim.password,
                }
            ]
        )
        config = load_sms_config(binds, "", "", sender)
        self.worker = SmsWorker(
            sessions,
            queue,
            config,
            worker_id="sms-demo",
            max_parts=max_parts,
            flush_seconds=0.05,
            unanswered_grace=0,
            plan=FlowPlanner(sessions, Scheduler()),
        )
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sms-demo", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    @classmethod
    def start(cls, sessions, queue, sender: str, max_parts: int) -> DemoSms | None:
        """The SMS channel on the simulator, or None (with the reason printed) when it cannot run."""
        try:
            return cls(sessions, queue, sender, max_parts)
        except Exception as exc:
            print(f"SMSC simulator not available ({exc}); SMS go to the dry-run outbox", flush=True)
            return None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            self._ready.set()
            await self.worker.run(self._stop, drain_seconds=5)

        self._loop.run_until_complete(main())

    def settle(self, timeout: float = 60) -> dict[str, int]:
        """Wait until no SMS is queued or sending (and receipts are in); the counts by status."""
        deadline = time.monotonic() + timeout
        while True:
            with self.sessions() as session:
                counts = dict(
                    session.execute(
                        select(Message.status, func.count())
                        .where(Message.channel == Channel.sms)
                        .group_by(Message.status)
                    ).all()
                )
            busy = counts.get(MessageStatus.queued, 0) + counts.get(MessageStatus.sending, 0)
            if (busy == 0 and counts.get(MessageStatus.submitted, 0) == 0) or time.monotonic() > deadline:
                return {s.value: n for s, n in counts.items()}
            time.sleep(0.1)

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self.sim.stop()
