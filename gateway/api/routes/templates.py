"""Texts per action type with placeholders: centralists choose and fill one in the console,
admins edit them (docs/areas.md)."""

import re
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway import audit
from gateway.actions import wording
from gateway.api.deps import AdminDep, CentralistDep, SessionDep
from gateway.api.schemas import TemplateFill, TemplateFilled, TemplateIn, TemplatePublic
from gateway.errors import Conflict, NotFound
from gateway.storage.models import ActionType, TextTemplate

router = APIRouter(prefix="/api/v1", tags=["templates"])
TemplateId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _public(t: TextTemplate) -> TemplatePublic:
    names = list(dict.fromkeys(re.findall(r"\{(\w+)\}", t.body)))
    return TemplatePublic(id=t.id, action_type=t.action_type, name=t.name, body=t.body, placeholders=names)


def _get(session: Session, template_id: int) -> TextTemplate:
    found = session.get(TextTemplate, template_id)
    if found is None:
        raise NotFound(f"template {template_id} does not exist", template_id=template_id)
    return found


@router.get("/templates", response_model=list[TemplatePublic])
def list_templates(
    session: SessionDep, user: CentralistDep, action_type: Annotated[ActionType | None, Query()] = None
):
    """The templates (of one action type), by type and name."""
    stmt = select(TextTemplate).order_by(TextTemplate.action_type, TextTemplate.name)
    if action_type is not None:
        stmt = stmt.where(TextTemplate.action_type == action_type)
    return [_public(t) for t in session.scalars(stmt)]


@router.post("/templates/{template_id}/fill", response_model=TemplateFilled)
def fill_template(template_id: TemplateId, body: TemplateFill, session: SessionDep, user: CentralistDep):
    """The template's text with the placeholders filled in (a sentence left without any of its
    values is left out); the console puts it into the draft's description."""
    template = _get(session, template_id)
    return TemplateFilled(
        description=wording.fill_template(template.body, body.model_dump(exclude_none=True))
    )


def _save(session: Session, template: TextTemplate, body: TemplateIn) -> None:
    template.action_type, template.name, template.body = body.action_type, body.name, body.body
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"a {body.action_type.value} template named {body.name!r} exists already") from None


@router.post("/admin/templates", status_code=status.HTTP_201_CREATED, response_model=TemplatePublic)
def create_template(body: TemplateIn, session: SessionDep, user: AdminDep):
    template = TextTemplate()
    session.add(template)
    _save(session, template, body)
    audit.record(session, user, "template.create", "template", template.id)
    session.commit()
    return _public(template)


@router.put("/admin/templates/{template_id}", response_model=TemplatePublic)
def replace_template(template_id: TemplateId, body: TemplateIn, session: SessionDep, user: AdminDep):
    template = _get(session, template_id)
    _save(session, template, body)
    audit.record(session, user, "template.edit", "template", template_id)
    session.commit()
    return _public(template)


@router.delete("/admin/templates/{template_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_template(template_id: TemplateId, session: SessionDep, user: AdminDep):
    session.delete(_get(session, template_id))
    audit.record(session, user, "template.delete", "template", template_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
