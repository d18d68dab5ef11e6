"""Waiting in tests: ask again until a condition holds, never sleep a fixed time and hope.

`until` for plain code, `until_async` inside a coroutine (`blocking=True` runs a condition that
blocks, a database query say, in a thread, so the event loop runs on). Both return the
condition's first truthy value, so a wait hands over what it waited for, and fail with an
AssertionError naming `what`: a string, or a callable that tells it at the moment of failure
(the state then, a log's tail), so that a timeout shows what was there instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

What = str | Callable[[], str]


def _timed_out(timeout: float, what: What) -> AssertionError:
    return AssertionError(f"timed out after {timeout} s waiting for {what() if callable(what) else what}")


def until(
    condition: Callable[[], T], timeout: float = 10.0, what: What = "the condition", every: float = 0.05
) -> T:
    """Call `condition` every `every` seconds until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what)
        time.sleep(every)


async def until_async(
    condition: Callable[[], T],
    timeout: float = 10.0,
    what: What = "the condition",
    every: float = 0.05,
    *,
    blocking: bool = False,
) -> T:
    """`until` for a coroutine: the event loop runs on while it waits."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(condition) if blocking else condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what)
        await asyncio.sleep(every)
