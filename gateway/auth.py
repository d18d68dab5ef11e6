"""API keys, browser sessions and roles.

Keys are random, shown once, and stored only as an HMAC under SECRET_KEY. A browser exchanges a
key once for a session cookie (gateway/api/routes/web.py): `<user id>.<expiry>.<signature>`,
signed with SECRET_KEY over the user's stored key hash, so the cookie ends with its expiry, with
the user's deactivation and with a new key.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.errors import Forbidden, Unauthenticated
from gateway.storage.models import Role, User

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


def _session_signature(secret: str, user_id: int, expires: int, key_hash: str) -> str:
    message = f"session|{user_id}|{expires}|{key_hash}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def session_token(secret: str, user: User, expires: int) -> str:
    """The cookie value for `user`, valid until `expires` (Unix seconds)."""
    return f"{user.id}.{expires}.{_session_signature(secret, user.id, expires, user.key_hash)}"


def authenticate_session(session: Session, secret: str, token: str, now: float) -> User:
    """The active user a session cookie belongs to, or Unauthenticated (forged, expired, revoked)."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit() or len(parts[0]) > 10 or len(parts[1]) > 12:
        raise Unauthenticated("invalid session; log in again")
    user_id, expires, signature = int(parts[0]), int(parts[1]), parts[2]
    if expires <= now:
        raise Unauthenticated("session expired; log in again")
    user = session.get(User, user_id)
    if user is None or not hmac.compare_digest(signature, _session_signature(secret, user_id, expires, user.key_hash)):
        raise Unauthenticated("invalid session; log in again")
    if not user.active:
        raise Unauthenticated("this user has been deactivated")
    return user


def require_role(user: User, *roles: Role) -> None:
    if user.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        raise Forbidden(f"this needs the role {allowed}; you are {user.role.value}", role=user.role.value)
