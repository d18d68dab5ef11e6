"""The trunk's simultaneous calls (VOICE_MAX_CALLS), handed out by the voice worker's loop.

Not a semaphore: a semaphore serves its waiters first come, first served, so a retry of one
action's busy numbers would take the next free line before another action's first call. Here a
call only starts when the worker's loop gives it a line: a new message when it is taken from the
queue, a retry when the scheduler picks its flow among everything waiting (gateway/queue/schedule.py).
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque


class Lines:
    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError(f"at least one line, not {count!r}")
        self.count = count
        self.busy = 0
        self.changed = asyncio.Event()  # a line came free or a retry began to wait
        self._waiting: dict[int, deque[asyncio.Future[None]]] = {}  # flow → retries waiting for a line

    @property
    def free(self) -> int:
        return self.count - self.busy

    def take(self) -> None:
        """A line for a call the loop starts now."""
        if self.busy >= self.count:
            raise RuntimeError("no line free")
        self.busy += 1

    def release(self) -> None:
        """The call on a line ended."""
        self.busy -= 1
        self.changed.set()

    async def wait(self, flow: int) -> None:
        """Until the loop gives this retry (of `flow`) a line; the line is then held."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(flow, deque()).append(future)
        self.changed.set()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # given, but never used
            else:
                self._waiting[flow].remove(future)
            raise

    def waiting(self) -> Counter[int]:
        """Retries waiting for a line, per flow."""
        return Counter({flow: len(queue) for flow, queue in self._waiting.items() if queue})

    def give(self, flow: int) -> None:
        """A line to the longest-waiting retry of `flow`."""
        self.take()
        self._waiting[flow].popleft().set_result(None)
        if not self._waiting[flow]:
            del self._waiting[flow]


class Line:
    """One message's hold on a line: given back once, however its calls end."""

    def __init__(self, lines: Lines) -> None:
        self.lines = lines
        self.held = True  # the loop took it for this message

    def release(self) -> None:
        if self.held:
            self.held = False
            self.lines.release()

    async def wait(self, flow: int) -> None:
        """Held again once the loop gives one (see `Lines.wait`)."""
        await self.lines.wait(flow)
        self.held = True
