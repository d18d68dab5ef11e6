"""Participants for municipalities: register, change, remove, import, unsubscribe."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, UploadFile, status

from gateway import audit, participants
from gateway.api.deps import MunicipalityDep, SessionDep
from gateway.errors import Invalid
from gateway.fields import Text100
from gateway.policy import require_own_municipality
from gateway.registration import ImportReport, ParticipantIn, ParticipantPublic
from gateway.storage.models import Municipality, Role, User

router = APIRouter(prefix="/api/v1/participants", tags=["participants"])
ParticipantId = Annotated[int, Path(ge=1, le=2**63 - 1)]
MAX_CSV_BYTES = 20 * 1024 * 1024
SearchText = Text100


def _municipality_of(session, user: User, requested: int | None) -> int:
    """The municipality a write goes to: her own for a municipality user, the named one for an admin."""
    own = user.municipality_id
    if user.role == Role.municipality and own is not None:  # always set: ck_api_user_role_scope
        if requested not in (None, own):
            raise Invalid(
                "a municipality registers its own participants; leave municipality_id out",
                field="municipality_id",
            )
        return own
    if requested is None:
        raise Invalid("an admin must name the municipality_id", field="municipality_id")
    if session.get(Municipality, requested) is None:
        raise Invalid(f"municipality {requested} does not exist", field="municipality_id")
    return requested


def _owned(session, user: User, participant_id: int):
    p = participants.get(session, participant_id)
    require_own_municipality(user, p.municipality_id)
    return p


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ParticipantPublic)
def create_participant(body: ParticipantIn, session: SessionDep, user: MunicipalityDep):
    p = participants.create(session, _municipality_of(session, user, body.municipality_id), body)
    session.flush()
    audit.record(session, user, "participant.create", "participant", p.id)
    session.commit()
    return participants.public(p)


@router.get("", response_model=list[ParticipantPublic])
def list_participants(
    session: SessionDep,
    user: MunicipalityDep,
    q: Annotated[SearchText | None, Query(description="Name, or the last digits of the phone number")] = None,
    municipality_id: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Admins only")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
):
    """The municipality's own participants (admins: all, or one municipality's)."""
    scope = user.municipality_id if user.role == Role.municipality else municipality_id
    found = [participants.public(p) for p in participants.search(session, scope, q, limit, offset)]
    # How many were read, and whether by a search — never the search term (a name, a number).
    audit.record(
        session, user, "participant.list", "participant", None, f"count={len(found)} search={q is not None}"
    )
    session.commit()
    return found


@router.get("/{participant_id}", response_model=ParticipantPublic)
def get_participant(participant_id: ParticipantId, session: SessionDep, user: MunicipalityDep):
    found = participants.public(_owned(session, user, participant_id))
    audit.record(session, user, "participant.read", "participant", participant_id)
    session.commit()
    return found


@router.put("/{participant_id}", response_model=ParticipantPublic)
def replace_participant(
    participant_id: ParticipantId, body: ParticipantIn, session: SessionDep, user: MunicipalityDep
):
    """Overwrite a participant, addresses included."""
    p = _owned(session, user, participant_id)
    if body.municipality_id not in (None, p.municipality_id):
        raise Invalid(
            "a participant cannot move to another municipality; register anew there", field="municipality_id"
        )
    participants.replace(session, p, body)
    audit.record(session, user, "participant.replace", "participant", participant_id)
    session.commit()
    return participants.public(p)


@router.delete("/{participant_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_participant(participant_id: ParticipantId, session: SessionDep, user: MunicipalityDep):
    """Remove a participant and her addresses (sent messages keep the number, not the person)."""
    session.delete(_owned(session, user, participant_id))
    audit.record(session, user, "participant.delete", "participant", participant_id)
    session.commit()


@router.post("/{participant_id}/unsubscribe", response_model=ParticipantPublic)
def unsubscribe_participant(participant_id: ParticipantId, session: SessionDep, user: MunicipalityDep):
    """Stop all alerts to this participant (kept for the records; delete to remove)."""
    p = _owned(session, user, participant_id)
    if p.unsubscribed_at is None:
        p.unsubscribed_at = datetime.now(UTC)
    audit.record(session, user, "participant.unsubscribe", "participant", participant_id)
    session.commit()
    return participants.public(p)


@router.post("/import", response_model=ImportReport)
def import_participants(
    file: UploadFile,
    session: SessionDep,
    user: MunicipalityDep,
    municipality_id: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Admins only")] = None,
):
    """Create or update participants from a CSV file (UTF-8, header row; columns in the docs).
    Good rows are imported; every bad row is reported by line and field."""
    target = _municipality_of(session, user, municipality_id)
    raw = file.file.read(MAX_CSV_BYTES + 1)
    if len(raw) > MAX_CSV_BYTES:
        raise Invalid(f"file larger than {MAX_CSV_BYTES // (1024 * 1024)} MB; split it", field="file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Invalid(f"file is not UTF-8 text (byte {exc.start})", field="file") from None
    report = participants.import_csv(session, target, text)
    audit.record(
        session,
        user,
        "participant.import",
        "municipality",
        target,
        f"rows={report.rows} created={report.created} updated={report.updated} errors={len(report.errors)}",
    )
    session.commit()
    return report
