"""Participants as a municipality registers them: forms, CSV import, unsubscribe."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from typing import cast

from pydantic import ValidationError
from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session, selectinload

from gateway.errors import NotFound
from gateway.registration import (
    AddressIn,
    AddressPublic,
    ImportReport,
    ImportRowError,
    ParticipantIn,
    ParticipantPublic,
    WindowPublic,
    window_dicts,
)
from gateway.storage.models import Address, Participant
from gateway.targeting.geo import tile_of

# One CSV row is one registration (a participant at one address). Rows with the same name and
# phone make one participant with several addresses. Re-importing a file changes nothing twice.
CSV_COLUMNS = (
    "name",
    "phone",
    "language",
    "country",
    "postcode",
    "house_number",
    "lat",
    "lon",
    "channel",
    "windows",
    "window_start",
    "window_end",
)
CSV_REQUIRED = ("name", "phone", "postcode", "house_number", "lat", "lon")
MAX_IMPORT_ROWS = 100_000


def public(p: Participant) -> ParticipantPublic:
    return ParticipantPublic(
        id=p.id,
        municipality_id=p.municipality_id,
        name=p.name,
        phone=p.phone,
        language=p.language,
        pause_from=p.pause_from,
        pause_until=p.pause_until,
        unsubscribed_at=p.unsubscribed_at,
        addresses=[
            AddressPublic(
                id=a.id,
                country=a.country,
                postcode=a.postcode,
                house_number=a.house_number,
                lat=a.lat,
                lon=a.lon,
                channel=a.channel,
                windows=[WindowPublic(**w) for w in window_dicts(a.windows)],
            )
            for a in p.addresses
        ],
    )


def _address(a: AddressIn) -> Address:
    return Address(
        country=a.country,
        postcode=a.postcode,
        house_number=a.house_number,
        lat=a.lat,
        lon=a.lon,
        tile=tile_of(a.lat, a.lon),
        channel=a.channel,
        windows=a.windows_text(),
    )


def get(session: Session, participant_id: int) -> Participant:
    p = session.scalars(
        select(Participant)
        .where(Participant.id == participant_id)
        .options(selectinload(Participant.addresses))
    ).one_or_none()
    if p is None:
        raise NotFound(f"participant {participant_id} does not exist", participant_id=participant_id)
    return p


def create(session: Session, municipality_id: int, data: ParticipantIn) -> Participant:
    p = Participant(municipality_id=municipality_id, addresses=[_address(a) for a in data.addresses])
    _apply(p, data)
    session.add(p)
    session.flush()
    return p


def replace(session: Session, p: Participant, data: ParticipantIn) -> Participant:
    """Overwrite a participant with `data`, addresses included."""
    _apply(p, data)
    p.addresses = [_address(a) for a in data.addresses]
    session.flush()
    return p


def _apply(p: Participant, data: ParticipantIn) -> None:
    p.name, p.phone, p.language = data.name, data.phone, data.language
    p.pause_from, p.pause_until = data.pause_from, data.pause_until


def search(
    session: Session, municipality_id: int | None, q: str | None, limit: int, offset: int
) -> list[Participant]:
    stmt = select(Participant).options(selectinload(Participant.addresses)).order_by(Participant.id)
    if municipality_id is not None:
        stmt = stmt.where(Participant.municipality_id == municipality_id)
    if q:
        # Digits search the end of the number (what people remember), anything else the name.
        digits = q.strip().lstrip("+")
        if digits.isdigit():
            stmt = stmt.where(Participant.phone.endswith(digits))
        else:
            stmt = stmt.where(func.lower(Participant.name).contains(q.strip().lower(), autoescape=True))
    return list(session.scalars(stmt.limit(limit).offset(offset)))


def unsubscribe_number(session: Session, phone: str, now: datetime) -> int:
    """RULE: unsubscribing a number ends every registration of that number, in every municipality."""
    result = session.execute(
        update(Participant)
        .where(Participant.phone == phone, Participant.unsubscribed_at.is_(None))
        .values(unsubscribed_at=now, updated_at=now)
    )
    return cast(CursorResult, result).rowcount


def parse_csv(text: str) -> tuple[list[tuple[int, ParticipantIn]], list[ImportRowError], int]:
    """Rows grouped into participants (with the line of their first row), every bad row, and
    the number of data rows."""
    reader = csv.DictReader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in reader.fieldnames or []]
    except csv.Error as exc:
        return [], [ImportRowError(row=1, field=None, message=f"unreadable CSV header: {exc}")], 0
    missing = [c for c in CSV_REQUIRED if c not in header]
    if missing:
        return (
            [],
            [ImportRowError(row=1, field=None, message=f"header lacks column(s): {', '.join(missing)}")],
            0,
        )
    reader.fieldnames = header
    groups: dict[tuple[str, str], tuple[int, dict, list[dict]]] = {}
    errors: list[ImportRowError] = []
    rows = 0
    for line, row in _rows(reader, errors):
        rows += 1
        if line - 1 > MAX_IMPORT_ROWS:
            errors.append(
                ImportRowError(
                    row=line, field=None, message=f"more than {MAX_IMPORT_ROWS} rows; split the file"
                )
            )
            break
        if None in row:
            errors.append(ImportRowError(row=line, field=None, message="more values than header columns"))
            continue
        values = {k: (v or "").strip() for k, v in row.items() if k in CSV_COLUMNS}
        address = {k: values[k] for k in AddressIn.model_fields if values.get(k)}
        person = {k: values[k] for k in ("name", "phone", "language") if values.get(k)}
        try:
            # Validate the row on its own so that an error names this line and field.
            one = ParticipantIn.model_validate({**person, "addresses": [address]})
        except ValidationError as exc:
            errors.extend(_row_errors(line, exc))
            continue
        key = (one.name, one.phone)
        if key in groups:
            groups[key][2].append(address)
        else:
            groups[key] = (line, person, [address])
    participants = []
    for line, person, addresses in groups.values():
        try:
            participants.append((line, ParticipantIn.model_validate({**person, "addresses": addresses})))
        except ValidationError as exc:
            errors.extend(_row_errors(line, exc))
    return participants, errors, rows


def _rows(reader: csv.DictReader, errors: list[ImportRowError]) -> Iterable[tuple[int, dict]]:
    """(line, row) pairs; a file the csv module cannot read further ends with one error row
    (an unbalanced quote, for example, swallows the rest of the file)."""
    line = 1
    try:
        for row in reader:
            line += 1
            yield line, row
    except csv.Error as exc:
        errors.append(ImportRowError(row=line + 1, field=None, message=f"unreadable CSV from here on: {exc}"))


def _row_errors(line: int, exc: ValidationError) -> Iterable[ImportRowError]:
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if not isinstance(p, int) and p != "addresses"]
        yield ImportRowError(
            row=line, field=".".join(loc) or None, message=err["msg"].removeprefix("Value error, ")
        )


def import_csv(session: Session, municipality_id: int, text: str) -> ImportReport:
    """Create or update the participants in a CSV file; report every bad row by line and field."""
    parsed, errors, rows = parse_csv(text)
    existing = (
        {
            (p.name, p.phone): p
            for p in session.scalars(
                select(Participant)
                .where(
                    Participant.municipality_id == municipality_id,
                    Participant.phone.in_({d.phone for _, d in parsed}),
                )
                .options(selectinload(Participant.addresses))
            )
        }
        if parsed
        else {}
    )
    created = updated = 0
    for _line, data in parsed:
        p = existing.get((data.name, data.phone))
        if p is None:
            create(session, municipality_id, data)
            created += 1
        else:
            # Keep addresses the file does not mention; replace the ones it does.
            mentioned = {(a.postcode, a.house_number) for a in data.addresses}
            kept = [a for a in p.addresses if (a.postcode, a.house_number) not in mentioned]
            p.language = data.language  # the file has no pause columns: a pause stays as it is
            p.addresses = kept + [_address(a) for a in data.addresses]
            updated += 1
    session.flush()
    return ImportReport(
        rows=rows, created=created, updated=updated, errors=sorted(errors, key=lambda e: e.row)
    )
