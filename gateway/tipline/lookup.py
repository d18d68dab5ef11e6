"""Which open actions reached a number: a Redis route cache in front of SQL.

A call must be routed in milliseconds, so the tip line does not wait on SQL. When an action is
launched its recipients' numbers are written to Redis (number → action, code, centralist), and
removed again when it closes. A marker key says the cache holds *every* open action; while it is
missing (Redis restarted, never filled) lookups fall back to SQL and `rebuild` refills it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import cast

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.storage.models import Action, ActionStatus, Bulletin, BulletinKind, Centralist, Message
from gateway.tipline.routing import OpenAlert

log = logging.getLogger(__name__)
_PIPELINE_CHUNK = 1000
# Entries outlive their action a little, so a clock skew never drops them early; closing
# removes them explicitly anyway.
_TTL_MARGIN = timedelta(hours=1)
COMPLETE_CHECK_SECONDS = 1.0


def pack_alert(a: OpenAlert) -> str:
    """An open alert as one string (a route-cache value, a field of a tip record)."""
    return f"{a.action_code}|{a.launched_at.isoformat()}|{a.dial_string}"


def unpack_alert(action_id: bytes | str, value: bytes | str) -> OpenAlert:
    text = value.decode() if isinstance(value, bytes) else value
    code, launched, dial = text.split("|", 2)
    return OpenAlert(int(action_id), code, dial, datetime.fromisoformat(launched))


def unpack_codes(values: Iterable[bytes]) -> dict[str, OpenAlert]:
    """The open actions by code, from the values of the route cache's codes hash."""
    alerts = (unpack_alert(*value.decode().split("|", 1)) for value in values)
    return {a.action_code: a for a in alerts}


class RouteCache:
    """Number → open alerts, in Redis. Every method is safe to call when Redis is down."""

    def __init__(self, url: str, prefix: str = "burgernet:"):
        self.redis = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.prefix = prefix
        self._complete = f"{prefix}route:complete"
        self._codes = f"{prefix}route:codes"
        self._complete_checked = (-COMPLETE_CHECK_SECONDS, False)  # (monotonic time, answer)

    def _number(self, phone: str) -> str:
        return f"{self.prefix}route:{phone}"

    def lookup_keys(self, phone: str | None) -> tuple[str, str, str]:
        """The keys a lookup of `phone` reads: the complete marker, the codes, the number's alerts
        (a key that never exists for a withheld number)."""
        return self._complete, self._codes, self._number(phone or "")

    def remember(self, alert: OpenAlert, phones: Iterable[str], expires_at: datetime) -> None:
        """An action's alert reached these numbers."""
        until = int((expires_at + _TTL_MARGIN).timestamp())
        try:
            batch = self.redis.pipeline(transaction=False)
            # By code the action id is not the field, so it leads the value.
            batch.hset(self._codes, alert.action_code, f"{alert.action_id}|{pack_alert(alert)}")
            for n, phone in enumerate(phones, 1):
                key = self._number(phone)
                batch.hset(key, str(alert.action_id), pack_alert(alert))
                # Actions last equally long, so the latest launched expires last: plain EXPIREAT.
                batch.expireat(key, until)
                if n % _PIPELINE_CHUNK == 0:
                    batch.execute()
            batch.execute()
        except redis.RedisError as exc:
            self._incomplete(f"remember failed: {exc}")

    def forget(self, alert: OpenAlert, phones: Iterable[str]) -> None:
        """The action closed: its numbers no longer lead to it."""
        try:
            batch = self.redis.pipeline(transaction=False)
            batch.hdel(self._codes, alert.action_code)
            for n, phone in enumerate(phones, 1):
                batch.hdel(self._number(phone), str(alert.action_id))
                if n % _PIPELINE_CHUNK == 0:
                    batch.execute()
            batch.execute()
        except redis.RedisError as exc:
            self._incomplete(f"forget failed: {exc}")

    def alerts_for(self, phone: str) -> list[OpenAlert] | None:
        """The open alerts of a number, or None when the cache cannot say (use SQL)."""
        if not self._known_complete():
            return None
        try:
            entries = self.redis.hgetall(self._number(phone))
        except redis.RedisError:
            return None
        return [unpack_alert(k, v) for k, v in entries.items()]

    def _known_complete(self) -> bool:
        # Asked of Redis at most once a second, not per call: one round trip less on the tip
        # line's hot path. After Redis lost its data, misses are trusted for up to that second.
        checked_at, answer = self._complete_checked
        now = time.monotonic()
        if now - checked_at >= COMPLETE_CHECK_SECONDS:
            try:
                answer = bool(self.redis.exists(self._complete))
            except redis.RedisError:
                answer = False
            self._complete_checked = (now, answer)
        return answer

    def open_by_code(self) -> dict[str, OpenAlert] | None:
        """Open actions by code, or None when the cache cannot say."""
        if not self._known_complete():
            return None
        try:
            entries = cast(dict[bytes, bytes], self.redis.hgetall(self._codes))  # no decode_responses
        except redis.RedisError:
            return None
        return unpack_codes(entries.values())

    def rebuild(self, session: Session) -> int:
        """Fill the cache from SQL with every open action's recipients; returns the numbers written."""
        self._incomplete(None)
        written = 0
        for alert, expires_at in open_alerts(session):
            phones = session.scalars(alert_phones(alert.action_id)).all()
            self.remember(alert, phones, expires_at)
            written += len(phones)
        self.mark_complete()
        return written

    def mark_complete(self) -> None:
        """From now on a miss means "no alert" (the cache holds every open action)."""
        try:
            self.redis.set(self._complete, "1")
        except redis.RedisError as exc:
            log.warning("route cache not marked complete: %s", exc)
        self._complete_checked = (-COMPLETE_CHECK_SECONDS, False)

    def is_complete(self) -> bool:
        """Asked of Redis now (for the rebuilder), not from the once-a-second answer."""
        try:
            return bool(self.redis.exists(self._complete))
        except redis.RedisError:
            return False

    def _incomplete(self, why: str | None) -> None:
        if why:
            log.warning("route cache %s; lookups use SQL until it is rebuilt", why)
        self._complete_checked = (time.monotonic(), False)
        try:
            self.redis.delete(self._complete)
        except redis.RedisError:
            pass  # Redis is down: lookups fail over to SQL anyway

    def close(self) -> None:
        self.redis.close()


# --- SQL: the source of truth, and the fallback -------------------------------------------------


def _open_alert_columns():
    return select(
        Action.id, Action.action_code, Centralist.dial_string, Action.launched_at, Action.expires_at
    ).join(Centralist, Centralist.id == Action.centralist_id)


def open_alerts(session: Session) -> list[tuple[OpenAlert, datetime]]:
    """Every open action, with its expiry time."""
    rows = session.execute(_open_alert_columns().where(Action.status == ActionStatus.open))
    return [(OpenAlert(aid, code, dial, launched), expires) for aid, code, dial, launched, expires in rows]


def alert_phones(action_id: int):
    """SELECT of the numbers an action's alert went to."""
    return (
        select(Message.phone)
        .join(Bulletin, Bulletin.id == Message.bulletin_id)
        .where(Bulletin.action_id == action_id, Bulletin.kind == BulletinKind.alert)
    )


def alerts_for_sql(session: Session, phone: str) -> list[OpenAlert]:
    rows = session.execute(
        _open_alert_columns()
        .join(Bulletin, Bulletin.action_id == Action.id)
        .join(Message, Message.bulletin_id == Bulletin.id)
        .where(
            Message.phone == phone, Bulletin.kind == BulletinKind.alert, Action.status == ActionStatus.open
        )
    )
    return [OpenAlert(aid, code, dial, launched) for aid, code, dial, launched, _ in rows]


def open_by_code_sql(session: Session) -> dict[str, OpenAlert]:
    return {a.action_code: a for a, _ in open_alerts(session)}


def sync_action(cache: RouteCache | None, session: Session, action_id: int) -> None:
    """Bring the cache in line with one action that just opened (remember) or closed (forget)."""
    if cache is None:
        return
    row = session.execute(
        _open_alert_columns().add_columns(Action.status).where(Action.id == action_id)
    ).one_or_none()
    if row is None or row.action_code is None:
        return
    aid, code, dial, launched, expires, status = row
    alert = OpenAlert(aid, code, dial, launched)
    phones = session.scalars(alert_phones(action_id)).all()
    if status == ActionStatus.open:
        cache.remember(alert, phones, expires)
    else:
        cache.forget(alert, phones)
