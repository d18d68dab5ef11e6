"""Administration: municipalities, centralists and API users."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway import audit, auth
from gateway.api.deps import AdminDep, SessionDep, SettingsDep, UserDep
from gateway.api.schemas import (
    AuditEventPublic,
    CentralistIn,
    CentralistPublic,
    MunicipalityIn,
    MunicipalityPublic,
    SessionsEnded,
    UserCreated,
    UserIn,
    UserPublic,
)
from gateway.errors import Conflict, Invalid, NotFound
from gateway.fields import Day, Id
from gateway.storage.models import Centralist, Municipality, Role, User

router = APIRouter(prefix="/api/v1", tags=["administration"])
Limit = Annotated[int, Query(ge=1, le=1000)]
UserId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/me", response_model=UserPublic)
def me(user: UserDep):
    """Who the API key belongs to."""
    return UserPublic.model_validate(user)


@router.post("/municipalities", status_code=status.HTTP_201_CREATED, response_model=MunicipalityPublic)
def create_municipality(body: MunicipalityIn, session: SessionDep, _: AdminDep):
    if session.scalar(select(Municipality.id).where(Municipality.cbs_code == body.cbs_code)):
        raise Conflict(f"municipality {body.cbs_code} already exists", field="cbs_code")
    m = Municipality(**body.model_dump())
    session.add(m)
    session.commit()
    return MunicipalityPublic.model_validate(m)


@router.get("/municipalities", response_model=list[MunicipalityPublic])
def list_municipalities(session: SessionDep, _: AdminDep, limit: Limit = 500):
    return [
        MunicipalityPublic.model_validate(m)
        for m in session.scalars(select(Municipality).order_by(Municipality.name).limit(limit))
    ]


@router.post("/centralists", status_code=status.HTTP_201_CREATED, response_model=CentralistPublic)
def create_centralist(body: CentralistIn, session: SessionDep, _: AdminDep):
    c = Centralist(**body.model_dump())
    session.add(c)
    session.commit()
    return CentralistPublic.model_validate(c)


@router.get("/centralists", response_model=list[CentralistPublic])
def list_centralists(session: SessionDep, _: AdminDep, limit: Limit = 500):
    return [
        CentralistPublic.model_validate(c)
        for c in session.scalars(select(Centralist).order_by(Centralist.name).limit(limit))
    ]


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserCreated)
def create_user(body: UserIn, session: SessionDep, admin: AdminDep, settings: SettingsDep):
    """A new API user; the response carries its key, which is never shown again."""
    if body.role == Role.municipality and (
        body.municipality_id is None or session.get(Municipality, body.municipality_id) is None
    ):
        raise Invalid("a municipality user needs an existing municipality_id", field="municipality_id")
    if body.role == Role.centralist and (
        body.centralist_id is None or session.get(Centralist, body.centralist_id) is None
    ):
        raise Invalid("a centralist user needs an existing centralist_id", field="centralist_id")
    try:
        user, key = auth.create_user(
            session,
            settings.secret_key,
            body.name,
            body.role,
            municipality_id=body.municipality_id if body.role == Role.municipality else None,
            centralist_id=body.centralist_id if body.role == Role.centralist else None,
        )
        audit.record(session, admin, "user.create", "user", user.id, f"role={body.role.value}")
        session.commit()
    except IntegrityError:
        raise Conflict(f"a user named {body.name!r} already exists", field="name") from None
    return UserCreated(**UserPublic.model_validate(user).model_dump(), api_key=key)


@router.get("/users", response_model=list[UserPublic])
def list_users(session: SessionDep, _: AdminDep, limit: Limit = 500):
    return [
        UserPublic.model_validate(u) for u in session.scalars(select(User).order_by(User.id).limit(limit))
    ]


@router.delete("/users/{user_id}/sessions", response_model=SessionsEnded)
def end_sessions(user_id: UserId, session: SessionDep, admin: AdminDep):
    """End every browser session of a user (a lost laptop, a departure); her API key stays valid
    — deactivate the user to refuse that too."""
    if session.get(User, user_id) is None:
        raise NotFound(f"user {user_id} does not exist", user_id=user_id)
    ended = auth.end_user_sessions(session, user_id, datetime.now(UTC))
    audit.record(session, admin, "user.end_sessions", "user", user_id, f"ended={ended}")
    session.commit()
    return SessionsEnded(ended=ended)


AuditText = Annotated[str, Query(pattern=r"^[a-z_]{1,24}(\.[a-z_]{0,24})?$")]


@router.get("/admin/audit", response_model=list[AuditEventPublic])
def audit_trail(
    session: SessionDep,
    _: AdminDep,
    user_id: Annotated[Id | None, Query(description="Who acted")] = None,
    event: Annotated[
        AuditText | None, Query(description="e.g. action.close, or participant. for every participant event")
    ] = None,
    subject_type: Annotated[
        str | None,
        Query(pattern=r"^[a-z_]{1,24}$", description="action, participant, tip, user, municipality"),
    ] = None,
    subject_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    from_: Annotated[Day | None, Query(alias="from", description="First UTC day")] = None,
    to: Annotated[Day | None, Query(description="Last UTC day, inclusive")] = None,
    limit: Limit = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
):
    """The audit trail, newest first: who did what to which action or participant, and when."""
    filters = audit.AuditFilters(user_id, event, subject_type, subject_id, from_, to)
    return [AuditEventPublic.model_validate(e) for e in audit.events(session, filters, limit, offset)]
