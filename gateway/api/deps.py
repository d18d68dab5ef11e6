"""Dependencies shared by the routes: the settings, the database session, the caller."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from gateway import auth
from gateway.config import Settings
from gateway.errors import Forbidden, Unauthenticated
from gateway.storage.models import Role, User

_bearer = HTTPBearer(
    auto_error=False, description="An API key made with `burgernet create-admin` or POST /api/v1/users"
)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """A session per request. Routes that change data commit explicitly, so that they can act
    (publish to the queue) after the commit; anything uncommitted is rolled back at the end."""
    with request.app.state.sessions() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]


SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


# Where gateway.api.app.RequireCredentials leaves the authenticated caller (request.state).
CALLER = "caller"


def authenticate_request(request: Request) -> User:
    """The caller, by API key (`Authorization: Bearer`) or by the browser's session cookie; run by
    the RequireCredentials middleware, before the body is read (blocking: it asks the database)."""
    settings: Settings = request.app.state.settings
    key = _bearer_key(request)
    cookie = request.cookies.get(auth.SESSION_COOKIE)
    # A short session of its own: authentication must not hold the route's transaction.
    with request.app.state.sessions() as session:
        if key is None and cookie:
            user = auth.authenticate_session(session, settings.secret_key, cookie, datetime.now(UTC))
            if request.method not in SAFE_METHODS and auth.CSRF_HEADER not in request.headers:
                raise Forbidden(
                    f"a browser request that changes data must carry the {auth.CSRF_HEADER} header",
                    reason="csrf",
                )
        else:
            user = auth.authenticate(session, settings.secret_key, key)
        session.expunge(user)
    return user


def _bearer_key(request: Request) -> str | None:
    """The key of `Authorization: Bearer <key>` (the scheme in any case), or None."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    return key.strip() or None if scheme.lower() == "bearer" else None


def current_user(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
) -> User:
    """The caller the middleware authenticated (the Security parameter documents the scheme)."""
    user = getattr(request.state, CALLER, None)
    if user is None:  # a route outside /api/ that asks for a caller: a wiring mistake
        raise Unauthenticated("missing API key: send `Authorization: Bearer <key>`")
    return user


def role(*roles: Role):
    """A dependency that lets only these roles in (401 without a key, 403 for other roles)."""

    def check(user: Annotated[User, Depends(current_user)]) -> User:
        auth.require_role(user, *roles)
        return user

    return check


UserDep = Annotated[User, Depends(current_user)]
AdminDep = Annotated[User, Depends(role(Role.admin))]
CentralistDep = Annotated[User, Depends(role(Role.centralist, Role.admin))]
MunicipalityDep = Annotated[User, Depends(role(Role.municipality, Role.admin))]
