"""The audit trail (issue 17, deliverable 5): who did what to which action or participant, and when —
append-only, readable by admins, kept AUDIT_RETENTION_DAYS, never holding the data itself."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from gateway import housekeeping
from gateway.storage.models import AuditEvent, User, UserSession

AUDIT = "/api/v1/admin/audit"
PARTICIPANT = {
    "name": "Jan Jansen",
    "phone": "0612345678",
    "addresses": [{"postcode": "3511 AB", "house_number": "12", "lat": 52.09, "lon": 5.12}],
}
CSV = "name,phone,postcode,house_number,lat,lon\nPiet Pieters,0687654321,3511 AB,3,52.09,5.12\n"


def _user_id(api, name: str) -> int:
    with api.sessions() as s:
        return s.scalar(select(User.id).where(User.name == name))


def _trail(api, **params) -> list[tuple]:
    return [
        (e["event"], e["user_id"], e["subject_type"], e["subject_id"])
        for e in api.call("admin", "GET", AUDIT, params={"limit": 1000, **params})
    ]


def test_changes_to_actions_and_access_to_participants_are_recorded(api):
    centralist, utrecht = _user_id(api, "centralist"), _user_id(api, "utrecht")
    draft = api.call(
        "centralist",
        "POST",
        "/api/v1/actions",
        expect=201,
        json={
            "type": "robbery",
            "description": "Man in rode jas",
            "lat": 52.09,
            "lon": 5.12,
            "radius_m": 1000,
        },
    )
    a = draft["id"]
    api.call("centralist", "PATCH", f"/api/v1/actions/{a}", json={"description": "Man in blauwe jas"})
    api.call("centralist", "POST", f"/api/v1/actions/{a}/launch")
    api.call(
        "centralist", "POST", f"/api/v1/actions/{a}/updates", expect=201, json={"text": "Hij draagt een pet"}
    )
    api.call("centralist", "POST", f"/api/v1/actions/{a}/close", json={"outcome": "none"})
    api.call(
        "admin",
        "POST",
        f"/api/v1/actions/{a}/outcome",
        json={"outcome": "direct", "outcome_detail": "arrest"},
    )

    p = api.call("utrecht", "POST", "/api/v1/participants", expect=201, json=PARTICIPANT)["id"]
    api.call("utrecht", "GET", "/api/v1/participants", params={"q": "+31612345678"})
    api.call("utrecht", "GET", f"/api/v1/participants/{p}")
    api.call("utrecht", "PUT", f"/api/v1/participants/{p}", json={**PARTICIPANT, "name": "Jan de Vries"})
    api.call("utrecht", "POST", f"/api/v1/participants/{p}/unsubscribe")
    api.call("utrecht", "DELETE", f"/api/v1/participants/{p}", expect=204)
    api.client.post(
        "/api/v1/participants/import",
        files={"file": ("p.csv", CSV.encode(), "text/csv")},
        headers=api.as_("utrecht"),
    ).raise_for_status()

    admin = _user_id(api, "admin")
    assert _trail(api)[::-1] == [
        ("action.create", centralist, "action", a),
        ("action.edit", centralist, "action", a),
        ("action.launch", centralist, "action", a),
        ("action.update", centralist, "action", a),
        ("action.close", centralist, "action", a),
        ("action.outcome", admin, "action", a),
        ("participant.create", utrecht, "participant", p),
        ("participant.list", utrecht, "participant", None),
        ("participant.read", utrecht, "participant", p),
        ("participant.replace", utrecht, "participant", p),
        ("participant.unsubscribe", utrecht, "participant", p),
        ("participant.delete", utrecht, "participant", p),
        ("participant.import", utrecht, "municipality", api.utrecht.id),
    ]
    events = api.call("admin", "GET", AUDIT, params={"limit": 1000})
    details = {e["event"]: e["detail"] for e in events}
    assert details["action.edit"] == "description"
    assert details["participant.list"] == "count=1 search=True"  # not what was searched for
    assert details["participant.import"] == "rows=1 created=1 updated=0 errors=0"
    written = repr(events)
    for personal in ("Jan", "Piet", "612345678", "687654321", "Vries", "3511"):
        assert personal not in written, personal


def test_the_trail_is_filtered_and_paged_for_admins_only(api):
    for _ in range(3):
        api.call("utrecht", "GET", "/api/v1/participants")
    api.call(
        "centralist",
        "POST",
        "/api/v1/actions",
        expect=201,
        json={"type": "robbery", "description": "Man", "lat": 52.09, "lon": 5.12, "radius_m": 1000},
    )
    assert [e[0] for e in _trail(api, event="participant.")] == ["participant.list"] * 3
    assert [e[0] for e in _trail(api, user_id=_user_id(api, "centralist"))] == ["action.create"]
    assert [e[0] for e in _trail(api, subject_type="action")] == ["action.create"]
    first, second = (api.call("admin", "GET", AUDIT, params={"limit": 2, "offset": o}) for o in (0, 2))
    assert (
        len(first) == 2 and len(second) == 2 and {e["id"] for e in first}.isdisjoint(e["id"] for e in second)
    )
    today = datetime.now(UTC).date()
    assert len(_trail(api, **{"from": str(today), "to": str(today)})) == 4
    assert _trail(api, to=str(today - timedelta(days=1))) == []
    for who in ("centralist", "utrecht"):
        api.call(who, "GET", AUDIT, expect=403)
    for bad in ({"event": "x' OR 1=1"}, {"limit": 0}, {"from": "0001-01-01"}, {"subject_id": 0}):
        api.call("admin", "GET", AUDIT, expect=422, params=bad)


def test_the_trail_is_append_only(api):
    api.call("utrecht", "GET", "/api/v1/participants")
    with api.sessions() as s:
        with pytest.raises(DBAPIError, match="append-only"):
            s.execute(update(AuditEvent).values(event="participant.nothing"))
            s.flush()
        s.rollback()
        assert s.scalar(select(AuditEvent.event)) == "participant.list"
        with pytest.raises(DBAPIError, match="append-only"):
            s.execute(text("UPDATE audit_event SET user_id = NULL"))
        s.rollback()


def test_housekeeping_deletes_events_past_the_retention_and_expired_sessions(api):
    now = datetime.now(UTC)
    keep = api.settings.audit_retention_days
    with api.sessions() as s:
        for age in (keep + 1, keep - 1, 0):
            s.add(
                AuditEvent(at=now - timedelta(days=age), event="participant.read", subject_type="participant")
            )
        admin = s.scalars(select(User).where(User.name == "admin")).one()
        for expires in (now - timedelta(minutes=1), now + timedelta(hours=1)):
            s.add(
                UserSession(
                    token_hash=f"{expires.timestamp():064.3f}"[-64:],
                    user_id=admin.id,
                    key_hash=admin.key_hash,
                    created_at=now - timedelta(hours=8),
                    expires_at=expires,
                )
            )
        s.commit()
    assert housekeeping.prune(api.sessions, api.settings, now) == 1
    with api.sessions() as s:
        ages = sorted((now - at).days for at in s.scalars(select(AuditEvent.at)))
        assert ages == [0, keep - 1]
        assert [e > now for e in s.scalars(select(UserSession.expires_at))] == [True]
