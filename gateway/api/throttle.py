"""Login attempts per client, in a sliding window: guessing keys at the login form gets slow.

With Redis the window is shared by every API process (a sorted set of failure times per client);
without, each process counts its own. Behind a reverse proxy every client has the proxy's
address: run uvicorn with --proxy-headers so that the client's own address is counted.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable

import redis

from gateway.config import Settings
from gateway.errors import TooManyRequests

log = logging.getLogger(__name__)


def make_login_throttle(settings: Settings) -> LoginThrottle | RedisLoginThrottle:
    """The throttle for this installation: shared through Redis when it is configured."""
    if settings.redis_url:
        return RedisLoginThrottle(
            redis.Redis.from_url(settings.redis_url, socket_timeout=0.5),
            settings.login_max_failures,
            settings.login_window_seconds,
        )
    return LoginThrottle(settings.login_max_failures, settings.login_window_seconds)


def _refused(oldest: float, window: float, now: float) -> TooManyRequests:
    wait = max(1, math.ceil(oldest + window - now))
    return TooManyRequests(f"too many failed logins from your address; try again in {wait} s", wait)


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
                raise _refused(failures[0], self.window, now)

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


class RedisLoginThrottle:
    """LoginThrottle's window in Redis, shared by every API process. Should Redis fail, logins are
    let through (logged): the keys are 256-bit, the throttle only keeps the form useless for guessing."""

    def __init__(
        self,
        client: redis.Redis,
        limit: int,
        window: float,
        prefix: str = "burgernet:",
        clock: Callable[[], float] = time.time,
    ):
        self.client, self.limit, self.window, self.prefix, self._clock = client, limit, window, prefix, clock

    def _key(self, client: str) -> str:
        return f"{self.prefix}login-failures:{client}"

    def check(self, client: str) -> None:
        """RULE: login attempts are rate-limited per client — TooManyRequests when over the limit."""
        now, key = self._clock(), self._key(client)
        try:
            batch = self.client.pipeline(transaction=False)
            batch.zremrangebyscore(key, "-inf", now - self.window)
            batch.zrange(key, 0, 0, withscores=True)
            batch.zcard(key)
            _, oldest, count = batch.execute()
        except redis.RedisError as exc:
            log.warning("login throttle: Redis unavailable (%s); login not counted", type(exc).__name__)
            return
        if count >= self.limit:
            raise _refused(oldest[0][1], self.window, now)

    def failed(self, client: str) -> None:
        now, key = self._clock(), self._key(client)
        try:
            batch = self.client.pipeline(transaction=False)
            batch.zadd(key, {uuid.uuid4().hex: now})
            batch.expire(key, math.ceil(self.window))
            batch.execute()
        except redis.RedisError as exc:
            log.warning("login throttle: Redis unavailable (%s); failure not counted", type(exc).__name__)
