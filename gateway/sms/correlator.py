"""Which answer belongs to which submit: the bind's table of outstanding requests.

aiosmpplib's SimpleCorrelator scans every pending request on each store and lookup (0.7.4,
measured: quadratic while receipts are outstanding, 58 s for 10,000 with receipts held back). Here a request is found by its sequence
number in a dict, and expiry walks a deque in deadline order: every request on a bind has the
same timeout, so insertion order is deadline order and `expire` touches only what is due (an
answered request leaves a stale deque entry that expiry drops when it reaches it).

The other half of correlation, SMSC message id → our message and part for delivery receipts,
must survive a restart and lives in SQL (`SmsPart`, written by gateway/sms/store.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

MAX_SEQUENCE = 0x7FFFFFFF


class Correlator(Generic[T]):
    """Outstanding requests of one connection by sequence number, with time-ordered expiry."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._pending: dict[int, T] = {}
        self._deadlines: deque[tuple[float, int]] = deque()
        self._sequence = 0

    def next_sequence(self) -> int:
        """1 … 0x7FFFFFFF, then round again (SMPP 3.4 §5.1.4), skipping numbers still pending."""
        while True:
            self._sequence = self._sequence % MAX_SEQUENCE + 1
            if self._sequence not in self._pending:
                return self._sequence

    def put(self, sequence: int, request: T, now: float) -> None:
        self._pending[sequence] = request
        self._deadlines.append((now + self.timeout, sequence))

    def pop(self, sequence: int) -> T | None:
        """The request this response answers, or None (unknown, expired, or answered before)."""
        return self._pending.pop(sequence, None)

    def expire(self, now: float) -> list[T]:
        """Remove and return the requests whose deadline has passed."""
        out: list[T] = []
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, sequence = deadlines.popleft()
            request = self._pending.pop(sequence, None)
            if request is not None:
                out.append(request)
        return out

    def drain(self) -> list[T]:
        """Remove and return everything outstanding (the connection is gone)."""
        out = list(self._pending.values())
        self._pending.clear()
        self._deadlines.clear()
        return out

    def __len__(self) -> int:
        return len(self._pending)

    def __iter__(self) -> Iterator[T]:
        return iter(self._pending.values())
