"""A municipality's own messages (docs/areas.md): not time-critical, to an area inside its
boundary, at routine urgency, each waiting for its recipient's receive window."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway import audit, policy
from gateway.actions import lifecycle, messages
from gateway.actions.fanout import commit_and_publish
from gateway.api.deps import AdminDep, MunicipalityDep, SessionDep, SettingsDep
from gateway.api.routes.actions import ActionId, place_area
from gateway.api.schemas import (
    BoundaryIn,
    BoundaryPublic,
    MessageCreate,
    MessagePreview,
    MessagePublic,
    SmsPreview,
)
from gateway.errors import Conflict, Invalid, NotFound
from gateway.sms.encoding import TextTooLong, check_parts, split_sms
from gateway.storage.models import (
    Action,
    ActionStatus,
    ActionType,
    Message,
    Municipality,
    Role,
    Urgency,
    User,
)
from gateway.targeting.geo import circle_corners

router = APIRouter(prefix="/api/v1", tags=["municipality messages"])


def _now() -> datetime:
    return datetime.now(UTC)


def _scope(user: User, municipality_id: int | None) -> int:
    """The municipality a request is about: her own, or the one an admin names."""
    own = user.municipality_id
    if user.role == Role.municipality and own is not None:  # always set: ck_api_user_role_scope
        if municipality_id not in (None, own):
            raise Invalid(
                "a municipality sends for itself; leave municipality_id out", field="municipality_id"
            )
        return own
    if municipality_id is None:
        raise Invalid("an admin must name the municipality_id", field="municipality_id")
    return municipality_id


def _municipality(session: Session, municipality_id: int) -> Municipality:
    found = session.get(Municipality, municipality_id)
    if found is None:
        raise Invalid(f"municipality {municipality_id} does not exist", field="municipality_id")
    return found


def _message(session: Session, user: User, message_id: int, *, for_update: bool = False) -> Action:
    action = session.get(Action, message_id, with_for_update=for_update)
    if action is None or action.municipality_id is None:
        raise NotFound(f"message {message_id} does not exist", message_id=message_id)
    policy.require_action_owner(user, action)
    return action


def _public(session: Session, actions: list[Action]) -> list[MessagePublic]:
    ids = [a.id for a in actions]
    waiting = messages.waiting_by_action(session, ids)
    released = dict(
        session.execute(
            select(Message.action_id, func.count())
            .where(Message.action_id.in_(ids))
            .group_by(Message.action_id)
        ).all()
    )
    return [
        MessagePublic.model_validate(
            {
                **{f: getattr(a, f) for f in MessagePublic.model_fields if hasattr(a, f)},
                "waiting": waiting.get(a.id, 0),
                "released": released.get(a.id, 0),
            }
        )
        for a in actions
    ]


@router.put("/municipalities/{municipality_id}/boundary", response_model=BoundaryPublic)
def set_boundary(
    municipality_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    body: BoundaryIn,
    session: SessionDep,
    user: AdminDep,
):
    """The municipality's territory (e.g. from PDOK's gemeentegrenzen): its messages go inside it."""
    municipality = _municipality(session, municipality_id)
    municipality.boundary = [[lat, lon] for lat, lon in body.polygon]
    audit.record(session, user, "municipality.boundary", "municipality", municipality_id)
    session.commit()
    return BoundaryPublic(id=municipality.id, cbs_code=municipality.cbs_code, boundary=municipality.boundary)


@router.post("/messages", status_code=status.HTTP_201_CREATED, response_model=MessagePublic)
def create_message(body: MessageCreate, session: SessionDep, user: MunicipalityDep, settings: SettingsDep):
    """A draft message of the municipality to an area inside it; nothing goes out until it is sent."""
    municipality = _municipality(session, _scope(user, body.municipality_id))
    action = Action(
        type=ActionType.other,
        urgency=Urgency.routine,  # RULE: a municipality's message is never time-critical
        description=body.description,
        send_sms="sms" in body.channels,
        send_voice="voice" in body.channels,
        municipality_id=municipality.id,
        tip_line=body.tip_line,
    )
    place_area(action, body.model_dump(include={"lat", "lon", "radius_m", "polygon"}))
    if action.radius_m > settings.max_radius_m:
        raise Invalid(
            f"the area reaches {action.radius_m} m from its centre, above the maximum of {settings.max_radius_m} m",
            field="polygon" if action.polygon else "radius_m",
        )
    area = action.polygon or circle_corners(action.lat, action.lon, action.radius_m)
    policy.require_inside_municipality([(lat, lon) for lat, lon in area], municipality)
    session.add(action)
    session.flush()
    sms, _spoken = messages.texts(session, action, settings.tip_line)
    try:
        check_parts(sms, settings.sms_max_parts)
    except TextTooLong as exc:
        raise Invalid(f"description too long for SMS: {exc}", field="description") from None
    audit.record(session, user, "message.create", "action", action.id)
    session.commit()
    return _public(session, [action])[0]


@router.get("/messages", response_model=list[MessagePublic])
def list_messages(
    session: SessionDep,
    user: MunicipalityDep,
    municipality_id: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="Admins: one municipality")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
):
    """The municipality's own messages, newest first (apart from police actions)."""
    stmt = select(Action).where(Action.municipality_id.is_not(None)).order_by(Action.id.desc()).limit(limit)
    if user.role == Role.municipality or municipality_id is not None:
        stmt = stmt.where(Action.municipality_id == _scope(user, municipality_id))
    return _public(session, list(session.scalars(stmt)))


@router.get("/messages/{message_id}/preview", response_model=MessagePreview)
def preview_message(message_id: ActionId, session: SessionDep, user: MunicipalityDep, settings: SettingsDep):
    """Whom it will reach, how many of them only when their window opens, and its texts."""
    action = _message(session, user, message_id)
    counts, waiting = messages.waiting_counts(session, action, _now())
    sms, spoken = messages.texts(session, action, settings.tip_line)
    encoded = split_sms(sms)
    return MessagePreview(
        recipients=counts,
        total=sum(counts.values()),
        waiting=waiting,
        sms=SmsPreview(
            text=sms, encoding=encoded.encoding, part_count=encoded.part_count, parts=encoded.parts
        ),
        spoken_text=spoken,
    )


@router.post("/messages/{message_id}/send", response_model=MessagePublic)
def send_message(
    message_id: ActionId, request: Request, session: SessionDep, user: MunicipalityDep, settings: SettingsDep
):
    """Send it: whoever is in a receive window now gets it at once, everyone else when hers opens."""
    _message(session, user, message_id)
    queued = messages.launch(session, message_id, _now(), settings)
    audit.record(session, user, "message.send", "action", message_id)
    state = request.app.state
    commit_and_publish(session, state.sessions, state.queue, queued, state.route_cache)
    return _public(session, [lifecycle.get_action(session, message_id, fresh=True)])[0]


@router.post("/messages/{message_id}/close", response_model=MessagePublic)
def close_message(message_id: ActionId, session: SessionDep, user: MunicipalityDep):
    """Stop it: those still waiting for their window no longer get it (no closing message)."""
    action = _message(session, user, message_id)
    if action.status != ActionStatus.open:
        raise Conflict(f"message {message_id} is {action.status.value}; only a sent message can be stopped")
    lifecycle.close(session, message_id, _now(), outcome=None)
    audit.record(session, user, "message.close", "action", message_id)
    session.commit()
    return _public(session, [lifecycle.get_action(session, message_id, fresh=True)])[0]
