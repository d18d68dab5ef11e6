"""Login attempts per client, in a sliding window: guessing keys at the login form gets slow.

In-process: each API process counts its own clients (with several processes behind a balancer
an attacker gets that many windows — still far too few for a 256-bit key; the point is to make
the log quiet and the form useless for guessing). Behind a reverse proxy every client has the
proxy's address: set the proxy's forwarded-for handling in uvicorn (--proxy-headers).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from gateway.errors import TooManyRequests


class LoginThrottle:
    """At most `limit` failed logins per client in any `window` seconds; beyond that every login
    from the client is refused (429 with Retry-After) until the oldest failure leaves the window."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self._clock = limit, window, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()  # sync routes run in a thread pool

    def check(self, client: str) -> None:
        """RULE: login attempts are rate-limited per client — TooManyRequests when over the limit."""
        now = self._clock()
        with self._lock:
            failures = self._recent(client, now)
            if len(failures) >= self.limit:
                wait = max(1, math.ceil(failures[0] + self.window - now))
                raise TooManyRequests(f"too many failed logins from your address; try again in {wait} s", wait)

    def failed(self, client: str) -> None:
        now = self._clock()
        with self._lock:
            failures = self._recent(client, now)
            failures.append(now)
            self._failures[client] = failures

    def _recent(self, client: str, now: float) -> deque[float]:
        """The client's failures still in the window (older ones dropped; forgotten when none)."""
        failures = self._failures.get(client, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            self._failures.pop(client, None)
        return failures
