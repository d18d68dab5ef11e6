"""Actions for centralists: create, preview, launch, update, close, follow progress."""

import asyncio
import json
import math
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway import audit, cap, policy
from gateway.actions import lifecycle, wording
from gateway.actions.backlog import open_backlog
from gateway.actions.fanout import commit_and_publish
from gateway.api.deps import AdminDep, CentralistDep, SessionDep, SettingsDep
from gateway.api.schemas import (
    ActionBacklogPublic,
    ActionCreate,
    ActionEdit,
    ActionPublic,
    CloseRequest,
    OutcomeRequest,
    PreviewPublic,
    ProgressRow,
    QueuedPublic,
    SmsPreview,
    TipPublic,
    UpdateCreate,
    UrgencyChange,
)
from gateway.config import Settings
from gateway.errors import Conflict, Invalid
from gateway.sms.encoding import TextTooLong, check_parts
from gateway.stats import marking
from gateway.storage.models import (
    Action,
    ActionStatus,
    Bulletin,
    BulletinKind,
    Centralist,
    Message,
    Role,
    Tip,
    Urgency,
)
from gateway.targeting.geo import Polygon

router = APIRouter(prefix="/api/v1/actions", tags=["actions"])
ActionId = Annotated[int, Path(ge=1, le=2**31 - 1)]
TIP_POLL_SECONDS = 1.0  # how fresh the live tip stream is


def _now() -> datetime:
    return datetime.now(UTC)


def _check_action(settings: Settings, action: Action) -> None:
    """Business limits that depend on configuration (the schema checks the rest)."""
    if action.radius_m > settings.max_radius_m:
        if action.polygon:
            raise Invalid(
                f"the polygon reaches {action.radius_m} m from its centre, above the maximum radius of "
                f"{settings.max_radius_m} m; draw a smaller area",
                field="polygon",
            )
        raise Invalid(
            f"radius_m {action.radius_m} is above the maximum of {settings.max_radius_m} m", field="radius_m"
        )
    try:
        check_parts(
            wording.alert_sms(action.description, lifecycle.CODE_PLACEHOLDER, settings.tip_line),
            settings.sms_max_parts,
        )
    except TextTooLong as exc:
        raise Invalid(f"description too long for SMS: {exc}", field="description") from None


def place_area(action: Action, changes: dict) -> None:
    """Set the area from a body's polygon, or its circle fields (which replace a polygon)."""
    corners = changes.get("polygon")
    if corners is not None:
        polygon = Polygon([(lat, lon) for lat, lon in corners])
        lat, lon = polygon.centre()
        action.lat, action.lon = round(lat, 6), round(lon, 6)
        action.radius_m = math.ceil(polygon.enclosing_radius_m(action.lat, action.lon))
        action.polygon = [[lat, lon] for lat, lon in polygon.corners]
        return
    circle = {name: changes[name] for name in ("lat", "lon", "radius_m") if changes.get(name) is not None}
    if circle:
        for name, value in circle.items():
            setattr(action, name, value)
        action.polygon = None


def _public(action: Action) -> ActionPublic:
    return ActionPublic.model_validate(action)


def _owned(session: Session, user, action_id: int, *, for_update: bool = False) -> Action:
    """The action, or NotFound; Forbidden unless `user` may change it (gateway.policy)."""
    action = lifecycle.get_action(session, action_id, for_update=for_update)
    policy.require_action_owner(user, action)
    return action


def _owner(session: Session, user, centralist_id: int | None) -> int:
    """The centralist a new action belongs to: herself, or the one an admin names."""
    if user.role == Role.centralist:
        if centralist_id not in (None, user.centralist_id):
            raise Invalid(
                "a centralist creates actions for herself; leave centralist_id out", field="centralist_id"
            )
        return user.centralist_id
    if centralist_id is None:
        raise Invalid("an admin must name the owning centralist_id", field="centralist_id")
    if session.get(Centralist, centralist_id) is None:
        raise Invalid(f"centralist {centralist_id} does not exist", field="centralist_id")
    return centralist_id


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ActionPublic)
def create_action(body: ActionCreate, session: SessionDep, user: CentralistDep, settings: SettingsDep):
    """Create a draft action in a circle or a drawn polygon; nothing is sent until it is launched."""
    owner = _owner(session, user, body.centralist_id)
    action = _new_action(body, owner)
    _check_action(settings, action)
    session.add(action)
    session.flush()
    audit.record(session, user, "action.create", "action", action.id)
    session.commit()
    return _public(action)


def _new_action(body: ActionCreate, owner: int) -> Action:
    action = Action(
        type=body.type,
        urgency=Urgency.for_type(body.type),
        description=body.description,
        send_sms="sms" in body.channels,
        send_voice="voice" in body.channels,
        centralist_id=owner,
    )
    place_area(action, body.model_dump(include={"lat", "lon", "radius_m", "polygon"}))
    return action


@router.get("", response_model=list[ActionPublic])
def list_actions(
    session: SessionDep,
    user: CentralistDep,
    status_: Annotated[ActionStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
):
    """Actions, newest first."""
    stmt = select(Action).order_by(Action.id.desc()).limit(limit).offset(offset)
    if status_ is not None:
        stmt = stmt.where(Action.status == status_)
    return [_public(a) for a in session.scalars(stmt)]


@router.get("/backlog", response_model=list[ActionBacklogPublic])
def backlog(session: SessionDep, user: CentralistDep, settings: SettingsDep):
    """Per open action and channel: messages still waiting, and when the last should go at the
    action's share of the binds and lines (highest urgency first)."""
    return open_backlog(session, settings)


@router.get("/{action_id}", response_model=ActionPublic)
def get_action(action_id: ActionId, session: SessionDep, user: CentralistDep):
    return _public(lifecycle.get_action(session, action_id))


@router.patch("/{action_id}", response_model=ActionPublic)
def edit_action(
    action_id: ActionId, body: ActionEdit, session: SessionDep, user: CentralistDep, settings: SettingsDep
):
    """Change a draft (after launch, send an update instead)."""
    action = _owned(session, user, action_id, for_update=True)
    if action.status != ActionStatus.draft:
        raise Conflict(
            f"action {action_id} is {action.status.value}; only drafts can be edited; send an update"
        )
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    channels = changes.pop("channels", None)
    place_area(action, changes)
    for name, value in changes.items():
        if name not in ("lat", "lon", "radius_m", "polygon"):
            setattr(action, name, value)
    if "type" in changes:
        action.urgency = Urgency.for_type(action.type)
    if channels is not None:
        action.send_sms, action.send_voice = "sms" in channels, "voice" in channels
    _check_action(settings, action)
    audit.record(
        session,
        user,
        "action.edit",
        "action",
        action_id,
        ",".join(sorted(changes) + (["channels"] if channels else [])),
    )
    session.commit()
    return _public(action)


@router.get("/{action_id}/preview", response_model=PreviewPublic)
def preview_action(action_id: ActionId, session: SessionDep, user: CentralistDep, settings: SettingsDep):
    """Who would be reached if launched now, and the texts as they will go out."""
    action = lifecycle.get_action(session, action_id)
    p = lifecycle.preview(session, action, _now(), settings)
    return PreviewPublic(
        recipients=p.recipients,
        total=sum(p.recipients.values()),
        sms=SmsPreview(
            text=p.sms_text, encoding=p.sms.encoding, part_count=p.sms.part_count, parts=p.sms.parts
        ),
        spoken_text=p.spoken_text,
    )


def _commit_and_queue(
    request: Request, session: Session, action_id: int, queued: lifecycle.Queued
) -> QueuedPublic:
    action = _public(lifecycle.get_action(session, action_id, fresh=True))
    # Hand the ids to the workers only once they are committed (a launch's first recipients at
    # once, the rest chunk by chunk); housekeeping covers a crash in between.
    state = request.app.state
    counts = commit_and_publish(session, state.sessions, state.queue, queued, state.route_cache)
    return QueuedPublic(action=action, queued=counts)


@router.post("/{action_id}/launch", response_model=QueuedPublic)
def launch_action(
    action_id: ActionId, request: Request, session: SessionDep, user: CentralistDep, settings: SettingsDep
):
    """Give the action its code and queue one alert per phone number in the circle."""
    _owned(session, user, action_id)
    queued = lifecycle.launch(session, action_id, _now(), settings)
    audit.record(session, user, "action.launch", "action", action_id)
    return _commit_and_queue(request, session, action_id, queued)


@router.post("/{action_id}/updates", response_model=QueuedPublic, status_code=status.HTTP_201_CREATED)
def update_action(
    action_id: ActionId,
    body: UpdateCreate,
    request: Request,
    session: SessionDep,
    user: CentralistDep,
    settings: SettingsDep,
):
    """Send a follow-up (e.g. a corrected description) to everyone the alert went to."""
    _owned(session, user, action_id)
    try:
        check_parts(
            wording.update_sms(body.text, lifecycle.CODE_PLACEHOLDER, settings.tip_line),
            settings.sms_max_parts,
        )
    except TextTooLong as exc:
        raise Invalid(f"text too long for SMS: {exc}", field="text") from None
    queued = lifecycle.send_update(session, action_id, body.text, _now(), settings)
    audit.record(session, user, "action.update", "action", action_id)
    return _commit_and_queue(request, session, action_id, queued)


@router.post("/{action_id}/close", response_model=QueuedPublic)
def close_action(
    action_id: ActionId, body: CloseRequest, request: Request, session: SessionDep, user: CentralistDep
):
    """Record the outcome and queue the closing message to every number reached."""
    _owned(session, user, action_id)
    queued = lifecycle.close(
        session, action_id, _now(), outcome=body.outcome, outcome_detail=body.outcome_detail, note=body.note
    )
    audit.record(session, user, "action.close", "action", action_id, f"outcome={body.outcome.value}")
    return _commit_and_queue(request, session, action_id, queued)


@router.post("/{action_id}/urgency", response_model=ActionPublic)
def change_urgency(action_id: ActionId, body: UrgencyChange, session: SessionDep, user: AdminDep):
    """Raise (or lower) an action's urgency, e.g. an AMBER-like alert: its waiting messages get
    the new share within seconds (admins only)."""
    action = lifecycle.get_action(session, action_id, for_update=True)
    if action.status == ActionStatus.closed:
        raise Conflict(f"action {action_id} is closed; its urgency no longer matters")
    action.urgency = body.urgency
    audit.record(session, user, "action.urgency", "action", action_id, f"urgency={body.urgency.value}")
    session.commit()
    return _public(action)


@router.post("/{action_id}/outcome", response_model=ActionPublic)
def set_outcome(action_id: ActionId, body: OutcomeRequest, session: SessionDep, user: CentralistDep):
    """Set or correct the outcome of a closed (or expired) action; nothing is sent again."""
    action = marking.set_outcome(session, user, action_id, body.outcome, body.outcome_detail, body.note)
    audit.record(session, user, "action.outcome", "action", action_id, f"outcome={body.outcome.value}")
    session.commit()
    return _public(action)


@router.get("/{action_id}/progress", response_model=list[ProgressRow])
def action_progress(action_id: ActionId, session: SessionDep, user: CentralistDep):
    """Messages per bulletin, channel and status: how far the action has got."""
    lifecycle.get_action(session, action_id)
    return _progress(session, action_id)


def _progress(session: Session, action_id: int) -> list[ProgressRow]:
    rows = session.execute(
        select(Bulletin.kind, Bulletin.seq, Message.channel, Message.status, func.count())
        .join(Message, Message.bulletin_id == Bulletin.id)
        .where(Bulletin.action_id == action_id)
        .group_by(Bulletin.id, Bulletin.kind, Bulletin.seq, Message.channel, Message.status)
        .order_by(Bulletin.id, Message.channel, Message.status)
    )
    return [ProgressRow(kind=k.value, seq=s, channel=c, status=st.value, count=n) for k, s, c, st, n in rows]


@router.get(
    "/{action_id}/progress/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "Server-sent events: `progress` whenever the counts or the action change.",
        }
    },
)
async def action_progress_stream(action_id: ActionId, request: Request, user: CentralistDep):
    """The action and its message counts (as GET …/progress), pushed whenever they change."""
    sessions = request.app.state.sessions

    settings = request.app.state.settings

    def snapshot() -> str:
        with sessions() as session:
            action = _public(lifecycle.get_action(session, action_id))
            rows = _progress(session, action_id)
            waiting = next((b for b in open_backlog(session, settings) if b.action_id == action_id), None)
        backlog = ActionBacklogPublic.model_validate(waiting).model_dump(mode="json") if waiting else None
        return json.dumps(
            {
                "action": action.model_dump(mode="json"),
                "rows": [r.model_dump(mode="json") for r in rows],
                "backlog": backlog,
            }
        )

    last: list[str | None] = [None]

    def events_of(current: str):
        if current != last[0]:
            last[0] = current
            yield f"event: progress\ndata: {current}\n\n"

    return await _event_stream(request, snapshot, events_of)


async def _event_stream(request: Request, snapshot, events_of) -> StreamingResponse:
    """Server-sent events: `snapshot()` (run in a thread) polled every TIP_POLL_SECONDS, and the
    events `events_of(snapshot)` finds in it. The first snapshot is taken before the response
    starts, so that an unknown action is still a plain 404."""
    first = await asyncio.to_thread(snapshot)

    async def events():
        current = first
        while True:
            for event in events_of(current):
                yield event
            yield ": keep-alive\n\n"
            await asyncio.sleep(TIP_POLL_SECONDS)
            if await request.is_disconnected():
                return
            current = await asyncio.to_thread(snapshot)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


def _tips(session: Session, action_id: int) -> list[TipPublic]:
    tips = session.scalars(
        select(Tip).where(Tip.action_id == action_id).order_by(Tip.received_at.desc(), Tip.id.desc())
    )
    return [TipPublic.model_validate(t) for t in tips]


@router.get("/{action_id}/tips", response_model=list[TipPublic])
def action_tips(action_id: ActionId, session: SessionDep, user: CentralistDep):
    """The tips about this action (calls to the tip line and SMS replies), newest first."""
    lifecycle.get_action(session, action_id)
    return _tips(session, action_id)


@router.get(
    "/{action_id}/tips/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "Server-sent events, one `tip` event per new or changed tip.",
        }
    },
)
async def action_tips_stream(action_id: ActionId, request: Request, user: CentralistDep):
    """Tips as they arrive and as their calls end (server-sent events), for the centralist's screen."""
    sessions = request.app.state.sessions

    def snapshot() -> list[TipPublic]:
        with sessions() as session:
            lifecycle.get_action(session, action_id)
            return _tips(session, action_id)

    seen: dict[int, TipPublic] = {}

    def events_of(tips: list[TipPublic]):
        for tip in reversed(tips):  # oldest first
            if seen.get(tip.id) != tip:
                seen[tip.id] = tip
                yield f"event: tip\nid: {tip.id}\ndata: {tip.model_dump_json()}\n\n"

    return await _event_stream(request, snapshot, events_of)


# --- CAP 1.2 ---------------------------------------------------------------------------------------


async def _xml_body(request: Request) -> bytes:
    return await request.body()


@router.post(
    "/import-cap",
    status_code=status.HTTP_201_CREATED,
    response_model=ActionPublic,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/xml": {"schema": {"type": "string"}}}}
    },
)
def import_cap(
    user: CentralistDep,
    session: SessionDep,
    settings: SettingsDep,
    document: Annotated[bytes, Depends(_xml_body)],
    centralist_id: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="Admins: the owning centralist")
    ] = None,
):
    """A draft action from an OASIS CAP 1.2 alert (XML body); nothing is sent until it is launched."""
    alert = cap.parse(document)
    try:
        area = (
            {"polygon": alert.polygon}
            if alert.polygon
            else {"lat": alert.lat, "lon": alert.lon, "radius_m": alert.radius_m}
        )
        body = ActionCreate.model_validate(
            {"type": alert.type, "description": alert.description, "channels": alert.channels, **area}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "area"
        raise Invalid(f"CAP: {field}: {first['msg']}", field=field) from None
    action = _new_action(body, _owner(session, user, centralist_id))
    _check_action(settings, action)
    session.add(action)
    session.flush()
    audit.record(session, user, "action.create", "action", action.id, "from CAP")
    session.commit()
    return _public(action)


@router.get(
    "/{action_id}/cap",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}, "description": "The action as a CAP 1.2 alert."}},
)
def export_cap(action_id: ActionId, session: SessionDep, user: CentralistDep, settings: SettingsDep):
    """The action as an OASIS CAP 1.2 alert: Alert, Update after an update, Cancel once closed."""
    action = lifecycle.get_action(session, action_id)
    updates = session.scalar(
        select(func.count())
        .select_from(Bulletin)
        .where(Bulletin.action_id == action_id, Bulletin.kind == BulletinKind.update)
    )
    outcome = (
        wording.closing_body(action.outcome, action.outcome_detail, action.outcome_note)
        if action.closed_at
        else None
    )
    return Response(
        cap.export(action, updates or 0, settings.cap_sender, settings.tip_line, outcome),
        media_type="application/xml",
    )
