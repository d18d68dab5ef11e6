"""API keys, browser sessions and roles.

Keys are random, shown once, and stored only as an HMAC under SECRET_KEY. A browser exchanges a
key once for a session cookie (gateway/api/routes/web.py): a random token whose HMAC is a
`UserSession` row. The session ends with its expiry, at logout or when an admin ends the user's
sessions (wherever the cookie was copied to: the server no longer knows it), with the user's
deactivation and with a new key.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from gateway.errors import Forbidden, Unauthenticated
from gateway.storage.models import Role, User, UserSession

KEY_PREFIX = "bn_"
SESSION_COOKIE = "bn_session"
# RULE: a state-changing request authenticated by the cookie must carry this header. Browsers
# send it only from our own pages' scripts (cross-site forms cannot set headers; cross-site
# fetch with it needs a CORS preflight we never grant): with SameSite=Strict, the CSRF guard.
CSRF_HEADER = "X-Burgernet-Request"


@dataclass(frozen=True)
class NewKey:
    key: str  # give to the user once; never stored or logged
    prefix: str
    key_hash: str


def hash_key(secret: str, key: str) -> str:
    return hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()


def new_key(secret: str) -> NewKey:
    """A fresh API key (256 bits of randomness) and what the database keeps of it."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return NewKey(key, key[:10], hash_key(secret, key))


def create_user(
    session: Session,
    secret: str,
    name: str,
    role: Role,
    *,
    municipality_id: int | None = None,
    centralist_id: int | None = None,
) -> tuple[User, str]:
    """A new API user and its key (returned once)."""
    key = new_key(secret)
    user = User(
        name=name,
        role=role,
        municipality_id=municipality_id,
        centralist_id=centralist_id,
        key_hash=key.key_hash,
        key_prefix=key.prefix,
    )
    session.add(user)
    session.flush()
    return user, key.key


def authenticate(session: Session, secret: str, key: str | None) -> User:
    """The active user that owns `key`, or Unauthenticated."""
    if not key:
        raise Unauthenticated("missing API key: send `Authorization: Bearer <key>`")
    user = session.scalars(select(User).where(User.key_hash == hash_key(secret, key))).one_or_none()
    if user is None or not user.active:
        raise Unauthenticated("invalid or revoked API key")
    return user


def start_session(session: Session, secret: str, user: User, now: datetime, lifetime: timedelta) -> str:
    """A new browser session for `user`; returns the cookie value (never stored, only its HMAC)."""
    token = secrets.token_urlsafe(32)
    session.add(
        UserSession(
            token_hash=hash_key(secret, token),
            user_id=user.id,
            key_hash=user.key_hash,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    return token


def _session_row(session: Session, secret: str, token: str) -> UserSession | None:
    if not token or len(token) > 100:
        return None
    return session.scalars(
        select(UserSession).where(UserSession.token_hash == hash_key(secret, token))
    ).one_or_none()


def authenticate_session(session: Session, secret: str, token: str, now: datetime) -> User:
    """The active user a session cookie belongs to, or Unauthenticated (unknown, ended, expired, revoked)."""
    row = _session_row(session, secret, token)
    if row is None:
        raise Unauthenticated("invalid session; log in again")
    if row.ended_at is not None:
        raise Unauthenticated("this session has ended; log in again")
    if row.expires_at <= now:
        raise Unauthenticated("session expired; log in again")
    user = session.get(User, row.user_id)
    if user is None or user.key_hash != row.key_hash:  # a new key ends the sessions of the old one
        raise Unauthenticated("invalid session; log in again")
    if not user.active:
        raise Unauthenticated("this user has been deactivated")
    return user


def end_session(session: Session, secret: str, token: str, now: datetime) -> int | None:
    """RULE: logging out ends the session on the server — every copy of the cookie stops working.
    Returns the session's user id, or None when the cookie was no (live) session."""
    row = _session_row(session, secret, token)
    if row is None or row.ended_at is not None:
        return None
    row.ended_at = now
    return row.user_id


def end_user_sessions(session: Session, user_id: int, now: datetime) -> int:
    """End every live session of a user (an admin's decision); returns how many were live."""
    ended = session.execute(
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.ended_at.is_(None), UserSession.expires_at > now)
        .values(ended_at=now)
    )
    return cast(CursorResult[Any], ended).rowcount  # an UPDATE's result; execute() is typed wider


def require_role(user: User, *roles: Role) -> None:
    if user.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        raise Forbidden(f"this needs the role {allowed}; you are {user.role.value}", role=user.role.value)
