"""What handlers need from the rest of the system: the database, the route cache, the tip log."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime

import redis
from sqlalchemy.orm import Session, sessionmaker

from gateway.tipline import lookup
from gateway.tipline.lookup import RouteCache
from gateway.tipline.routing import OpenAlert
from gateway.tipline.tips import TipRecord, record_calls
from gateway.tipline.tipstream import TipStream
from ivr.tiplog import TipWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Lookup:
    """A caller's open alerts, and whether that answer is already in the tip log."""

    alerts: list[OpenAlert]
    any_open: bool
    logged: bool  # the arrival record with this answer is in the tip stream: the route follows from it
    codes: dict[str, OpenAlert] | None = None  # the open actions by code, if looked up with it


@dataclass
class IvrContext:
    sessions: sessionmaker[Session]
    cache: RouteCache | None  # None without Redis: every lookup goes to SQL
    tips: TipWriter = field(default=None)  # type: ignore[assignment]  # made from `sessions` when not given
    # With Redis: tip records go to the tip stream and the `burgernet tip-writer` process; without,
    # to `tips`, this process's writer thread.
    stream: TipStream | None = None
    # Signs each call's token (`call_token`). Every IVR process of a pool needs the same one
    # (SECRET_KEY): a call's hangup may reach another process than its first AGI did.
    call_secret: str = field(default_factory=lambda: secrets.token_hex(32))

    def __post_init__(self) -> None:
        if self.tips is None:
            self.tips = TipWriter(self.sessions)

    def call_token(self, call_id: str) -> str:
        """The token that proves a FastAGI session belongs to call `call_id` (set as a channel
        variable at its first AGI; nobody without the secret can make one for another call)."""
        return hmac.new(
            self.call_secret.encode(), f"fastagi-call|{call_id}".encode(), hashlib.sha256
        ).hexdigest()[:32]

    def is_call_token(self, call_id: str, token: str) -> bool:
        return hmac.compare_digest(self.call_token(call_id), token)

    def arrive(self, call_id: str, caller: str | None, received_at: datetime, meldkamer: str) -> Lookup:
        """A call arrived: its caller's open alerts — with the cache and the stream, looked up and
        logged in one Redis round trip."""
        if self.cache is not None and self.stream is not None:
            try:
                found = self.stream.arrive(self.cache, call_id, caller, received_at, meldkamer)
            except redis.RedisError as exc:
                log.warning("route lookup and tip log in Redis failed (%s); using SQL", type(exc).__name__)
            else:
                if found.complete:
                    return Lookup(
                        found.alerts,
                        found.any_open or bool(found.alerts),
                        logged=True,
                        codes=None if found.alerts else found.codes,
                    )
        alerts = self.alerts_for(caller)
        return Lookup(alerts, bool(alerts) or bool(self.open_by_code()), logged=False)

    def log(self, record: TipRecord) -> None:
        """Put a tip record in the log: in the tip stream (SQL itself when Redis is away), or
        without Redis to the writer thread."""
        if self.stream is None:
            self.tips.submit(record)
            return
        try:
            self.stream.append(record)
        except redis.RedisError as exc:
            # Written now, before the caller is put through: slower, but no tip waits in memory.
            log.warning("tip stream unavailable (%s); writing the tip record to SQL", type(exc).__name__)
            with self.sessions() as session, session.begin():
                record_calls(session, [record])

    def alerts_for(self, phone: str | None) -> list[OpenAlert]:
        """The open actions that alerted `phone`: from the cache, else from SQL."""
        if phone is None:
            return []
        cached = self.cache.alerts_for(phone) if self.cache else None
        if cached is not None:
            return cached
        with self.sessions() as session:
            return lookup.alerts_for_sql(session, phone)

    def open_by_code(self) -> dict[str, OpenAlert]:
        cached = self.cache.open_by_code() if self.cache else None
        if cached is not None:
            return cached
        with self.sessions() as session:
            return lookup.open_by_code_sql(session)

    def close(self) -> None:
        """Write what is queued, let go of the connections."""
        self.tips.close()
        if self.stream is not None:
            self.stream.close()
        if self.cache is not None:
            self.cache.close()
