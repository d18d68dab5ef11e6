"""Audio for the centralist (an action's spoken alert, a tip's voice recording) and a
municipality's view of the actions in its area."""

import hashlib
import re
from datetime import datetime
from pathlib import PurePosixPath
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel
from sqlalchemy import func, select

from gateway.actions import lifecycle
from gateway.api.deps import CentralistDep, MunicipalityDep, SessionDep, SettingsDep
from gateway.errors import Invalid, NotFound
from gateway.stats import query as stats_query
from gateway.storage.models import (
    Action,
    ActionStatus,
    ActionType,
    Bulletin,
    BulletinKind,
    Outcome,
    Role,
    Tip,
)
from gateway.tts import AudioCache

router = APIRouter(prefix="/api/v1", tags=["media"])
ActionId = Annotated[int, Path(ge=1, le=2**31 - 1)]
TipId = Annotated[int, Path(ge=1, le=2**31 - 1)]
# Asterisk names recordings tip-<UNIQUEID>.wav (dialplans/tipline.conf); nothing else is served.
_RECORDING_NAME = re.compile(r"tip-[A-Za-z0-9._-]{1,80}\.wav")
_NO_STORE = {"Cache-Control": "private, no-store"}


def _audio_cache(request: Request) -> AudioCache:
    """One cache per app, so that concurrent requests for one file wait for one synthesis."""
    cache = getattr(request.app.state, "audio_cache", None)
    if cache is None:
        cache = request.app.state.audio_cache = AudioCache.from_settings(request.app.state.settings)
    return cache


@router.get(
    "/actions/{action_id}/audio",
    response_class=FileResponse,
    responses={
        200: {"content": {"audio/wav": {}}, "description": "8 kHz mono WAV, as participants hear it."}
    },
)
def action_audio(
    action_id: ActionId,
    request: Request,
    session: SessionDep,
    user: CentralistDep,
    bulletin_id: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="Default: the alert (a draft: its preview)")
    ] = None,
):
    """The spoken alert as participants hear it: the voice worker's cached file, made when missing."""
    action = lifecycle.get_action(session, action_id)
    stmt = select(Bulletin).where(Bulletin.action_id == action_id)
    if bulletin_id is not None:
        stmt = stmt.where(Bulletin.id == bulletin_id)
    else:
        stmt = stmt.where(Bulletin.kind == BulletinKind.alert)
    bulletin = session.scalars(stmt).first()
    key: int | str  # the bulletin's id, or a draft preview's hash
    if bulletin is not None:
        key, text = bulletin.id, bulletin.spoken_text
    elif bulletin_id is not None:
        raise NotFound(f"action {action_id} has no bulletin {bulletin_id}", field="bulletin_id")
    else:  # a draft: what launching it would say, the code still a placeholder
        text = lifecycle.preview_spoken(action)
        key = "preview-" + hashlib.sha256(text.encode()).hexdigest()[:32]
    result = _audio_cache(request).ensure(key, text, "nl")
    return FileResponse(result.path, media_type="audio/wav", headers=_NO_STORE)


@router.get(
    "/tips/{tip_id}/recording",
    response_class=FileResponse,
    responses={200: {"content": {"audio/wav": {}}, "description": "The voice tip as Asterisk recorded it."}},
)
def tip_recording(tip_id: TipId, session: SessionDep, user: CentralistDep, settings: SettingsDep):
    """A voice tip left on the tip line, read from RECORDINGS_DIR."""
    tip = session.get(Tip, tip_id)
    if tip is None:
        raise NotFound(f"tip {tip_id} does not exist")
    name = PurePosixPath(tip.recording_path or "").name
    # Only the file name is taken from the database: the path is Asterisk's, the directory ours.
    if not _RECORDING_NAME.fullmatch(name):
        raise NotFound(f"tip {tip_id} has no recording")
    path = settings.recordings_dir / name
    if not path.is_file():
        raise NotFound(f"the recording of tip {tip_id} is not in RECORDINGS_DIR")
    return FileResponse(path, media_type="audio/wav", headers=_NO_STORE)


class AreaAction(BaseModel):
    id: int
    type: ActionType
    description: str
    status: ActionStatus
    launched_at: datetime | None
    closed_at: datetime | None
    outcome: Outcome | None
    reached: int  # numbers of the municipality's participants the alert went to
    tips: int


@router.get("/area/actions", response_model=list[AreaAction])
def area_actions(
    session: SessionDep,
    user: MunicipalityDep,
    municipality_id: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Admins only")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
):
    """The actions that alerted the municipality's participants, newest first."""
    scope = user.municipality_id if user.role == Role.municipality else municipality_id
    if scope is None:
        raise Invalid("an admin must name the municipality_id", field="municipality_id")
    # RULE: as in the statistics, an action is in the area when its alert went to one of the
    # municipality's participants (gateway.stats.query.reach: the rollup for settled actions).
    # Police actions only: its own messages are listed apart (GET /api/v1/messages).
    reach = stats_query.reach(
        session, select(Action.id).where(Action.launched_at.is_not(None), Action.municipality_id.is_(None))
    )
    tips = select(Tip.action_id, func.count().label("tips")).group_by(Tip.action_id).subquery()
    rows = session.execute(
        select(Action, func.sum(reach.c.recipients), func.coalesce(func.max(tips.c.tips), 0))
        .join(reach, reach.c.action_id == Action.id)
        .outerjoin(tips, tips.c.action_id == Action.id)
        .where(reach.c.municipality_id == scope, reach.c.recipients > 0)
        .group_by(Action.id)
        .order_by(Action.id.desc())
        .limit(limit)
    )
    return [
        AreaAction(
            id=a.id,
            type=a.type,
            description=a.description,
            status=a.status,
            launched_at=a.launched_at,
            closed_at=a.closed_at,
            outcome=a.outcome,
            reached=n,
            tips=t,
        )
        for a, n, t in rows
    ]
