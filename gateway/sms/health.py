"""Each bind's state (bound / unbound / auth_failed / bind_refused / stopped) where the API's
/health can read it: one small Redis key per bind, refreshed while the worker lives and expiring
(TTL) when it does not — a missing key means no worker reports that bind. Each entry also carries
the worker's rows set aside (`rows_set_aside`, `last_set_aside`: what the database refused to
store, gateway/sms/store.py), so /health shows them without a key of their own."""

from __future__ import annotations

import json
import time
from enum import StrEnum

import redis

TTL_SECONDS = 30


class BindState(StrEnum):
    bound = "bound"
    unbound = "unbound"  # connecting, or connecting again after the connection ended
    auth_failed = "auth_failed"  # the SMSC refused the bind's system_id or password
    bind_refused = "bind_refused"  # the SMSC refused the bind for another reason
    stopped = "stopped"


def _key(prefix: str, bind: str) -> str:
    return f"{prefix}sms:bind:{bind}"


class BindHealth:
    """The worker's side: remembers each bind's state and writes it to Redis (if any)."""

    def __init__(self, client: redis.Redis | None, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.states: dict[str, dict[str, object]] = {}
        self.rows_set_aside = 0
        self.last_set_aside: str | None = None

    def set(self, bind: str, state: BindState, detail: str) -> None:
        self.states[bind] = {
            "state": state,
            "detail": detail[:200],
            "since": round(time.time(), 3),
            **self._set_aside(),
        }

    def note_set_aside(self, reason: str) -> None:
        """One more row the database refused; `reason` the latest."""
        self.rows_set_aside += 1
        self.last_set_aside = reason[:200]
        for value in self.states.values():
            value.update(self._set_aside())

    def _set_aside(self) -> dict[str, object]:
        return {"rows_set_aside": self.rows_set_aside, "last_set_aside": self.last_set_aside}

    def publish(self) -> None:
        """Write every bind's state with a fresh TTL (blocking: run it in a thread)."""
        if self.client is None or not self.states:
            return
        with self.client.pipeline(transaction=False) as pipe:
            for bind, value in self.states.items():
                pipe.set(_key(self.prefix, bind), json.dumps(value), ex=TTL_SECONDS)
            pipe.execute()


def read_bind_health(client: redis.Redis, prefix: str) -> dict[str, dict[str, object]]:
    """Every reported bind's state, by bind name, for /health."""
    out: dict[str, dict[str, object]] = {}
    pattern = _key(prefix, "*")
    for key in client.scan_iter(match=pattern, count=100):
        value = client.get(key)
        if value:
            name = (key.decode() if isinstance(key, bytes) else key)[len(pattern) - 1 :]
            out[name] = json.loads(value)
    return out
