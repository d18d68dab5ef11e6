"""SQL writes off the call's path: one writer thread in the IVR, in order, a transaction per batch.

Asterisk's AGI() waits until the handler is done, so a handler does not write SQL itself: it
hands the write to this thread, which applies writes in arrival order, many per commit. With
Redis, tip records do not come here but go to the tip stream and the `burgernet tip-writer`
process (gateway/tipline/tipstream.py), which survives a crash of the IVR; this thread writes
what remains — an alert call's outcome — and, without Redis, the tip records too.

The price: writes still in the queue when the process is killed are lost (at most the last few
milliseconds of calls); a normal shutdown flushes them.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from gateway.tipline.tips import CallEnded, CallOpened, TipRecord, record_calls

log = logging.getLogger(__name__)

Write = Callable[[Session], object] | TipRecord
_STOP = object()


class TipWriter:
    def __init__(self, sessions: sessionmaker[Session], *, max_batch: int = 200, max_queue: int = 100_000):
        self.sessions, self.max_batch = sessions, max_batch
        self._queue: queue.Queue = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._run, name="tip-writer", daemon=True)
        self._thread.start()

    def submit(self, write: Write) -> None:
        """Apply `write` soon: a tip record, or any `write(session)` — after every tip record
        submitted before it (the records of one batch go first, together, in one statement each)."""
        self._queue.put(write)

    def flush(self) -> None:
        """Return once everything submitted so far is committed (tests, shutdown)."""
        self._queue.join()

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            writes = [w for w in batch if w is not _STOP]
            try:
                self._apply(writes)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if len(writes) < len(batch):
                return

    def _apply(self, writes: list[Write]) -> None:
        try:
            with self.sessions() as session, session.begin():
                _write_all(session, writes)
        except Exception:
            # One bad write must not cost the others their record: apply them one by one.
            log.exception("tip batch of %d failed; retrying one by one", len(writes))
            for write in writes:
                try:
                    with self.sessions() as session, session.begin():
                        _write_all(session, [write])
                except Exception:
                    log.exception("tip write dropped")


def _write_all(session: Session, writes: list[Write]) -> None:
    record_calls(session, [w for w in writes if isinstance(w, (CallOpened, CallEnded))])
    for write in writes:
        if not isinstance(write, (CallOpened, CallEnded)):
            write(session)
