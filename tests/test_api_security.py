"""Authentication and authorisation over the whole API, generated from the app's route table.

Every route is found by walking the app, so a new route is covered (or makes a test fail and
forces a decision) without anyone editing this file first.

Observed ordering (FastAPI 0.165): the auth dependencies (`current_user`, `role(...)`) run
before the request body is validated, so a request without a key gets 401 and a request with
the wrong role gets 403 even when the body is missing. The tests below check the 403 both
without a body and with a minimal valid body. FastAPI decodes JSON before it runs any
dependency, so a request without any key is turned away earlier, by the RequireCredentials
middleware (see the last test).
"""

import re
import typing

import pytest
from fastapi import UploadFile
from fastapi.routing import APIRoute
from sqlalchemy import select

from gateway import auth
from gateway.api.routes.web import LoginRequest
from gateway.api.schemas import (
    ActionCreate,
    ActionEdit,
    BoundaryIn,
    CentralistIn,
    CloseRequest,
    MessageCreate,
    MunicipalityIn,
    OutcomeRequest,
    TemplateFill,
    TemplateIn,
    TipMark,
    UpdateCreate,
    UrgencyChange,
    UserIn,
)
from gateway.registration import ParticipantIn
from gateway.storage.models import Participant, User

# Reachable without a key, on purpose. A new public route must be added here deliberately.
PUBLIC_PATHS = {
    "/health",
    "/livez",  # liveness and readiness for orchestrators: no data, no credentials (docs/operations.md)
    "/readyz",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/openapi.json",
    "/",
    "/login/",
    "/console/",
    "/dashboard/",
}  # the pages hold no data: they read it through the API
# Logging in and out of the browser session: public, POST only (tests/test_web_session.py).
SESSION_PATHS = {"/auth/login", "/auth/logout"}

# Which roles each part of the API shuts out, by path prefix.
ACTIONS = "/api/v1/actions"
TIPS = "/api/v1/tips"  # marking: centralists and admins, like actions
TEMPLATES = "/api/v1/templates"  # choosing and filling texts: centralists and admins
PARTICIPANTS = "/api/v1/participants"
AREA = "/api/v1/area"  # a municipality's view of the actions that reached its participants
MESSAGES = "/api/v1/messages"  # a municipality's own messages: municipalities and admins
ADMIN_ONLY = ("/api/v1/municipalities", "/api/v1/centralists", "/api/v1/users", "/api/v1/admin/")
# Single admin-only routes inside another group's prefix.
ADMIN_ONLY_PATHS = {"/api/v1/actions/{action_id}/urgency"}
# Single centralist (and admin) routes outside /api/v1/actions: the console's address search.
CENTRALIST_PATHS = {"/api/v1/console/geocode"}
# Routes every authenticated role may use.
ANY_ROLE = {
    "/api/v1/me",
    "/api/v1/console/config",
    *(f"/api/v1/stats/{name}" for name in ("summary", "signups", "by-municipality", "by-type")),
}

PARTICIPANT = {
    "name": "Jan Jansen",
    "phone": "0612345678",
    "addresses": [{"postcode": "3511 AB", "house_number": "12", "lat": 52.09, "lon": 5.12, "channel": "sms"}],
}
ACTION = {
    "type": "burglary",
    "description": "Man in rode jas op een fiets",
    "lat": 52.09,
    "lon": 5.12,
    "radius_m": 1000,
}

# A minimal valid body per request model: the role check is tested with input that would
# otherwise be accepted.
BODY_BY_MODEL = {
    ActionCreate: ACTION,
    ActionEdit: {"description": "Man in blauwe jas"},
    UpdateCreate: {"text": "Hij draagt nu een pet"},
    CloseRequest: {"outcome": "none"},
    UrgencyChange: {"urgency": "critical"},
    OutcomeRequest: {"outcome": "direct", "outcome_detail": "arrest"},
    TipMark: {"useful": True},
    LoginRequest: {"api_key": "bn_not_a_key"},
    ParticipantIn: PARTICIPANT,
    MunicipalityIn: {"cbs_code": "GM0307", "name": "Amersfoort", "region": "Midden-Nederland"},
    CentralistIn: {"name": "B. Eller", "meldkamer": "Midden-Nederland", "dial_string": "PJSIP/4022@mk"},
    UserIn: {"name": "nieuwe-gebruiker", "role": "admin"},
    MessageCreate: {
        "description": "Let op: inbraakgolf in de wijk.",
        "lat": 52.09,
        "lon": 5.12,
        "radius_m": 500,
    },
    TemplateIn: {"action_type": "burglary", "name": "Inbraak kort", "body": "Inbraak {where}."},
    TemplateFill: {"where": "aan de Oudegracht"},
    BoundaryIn: {"polygon": [[52.0, 5.0], [52.2, 5.0], [52.2, 5.3], [52.0, 5.3]]},
}
CSV = "name,phone,postcode,house_number,lat,lon,channel\nJan Jansen,0612345678,3511 AB,12,52.09,5.12,sms\n"


# --- the route table ------------------------------------------------------------------------


def _route_entries(app) -> list[tuple[str, str, object]]:
    """(method, path, route) for every route the app serves, HEAD included where offered."""
    try:
        # FastAPI ≥ 0.16x keeps included routers as one lazy entry in `app.routes`.
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI flattens included routes into `app.routes`
        pairs = [(r.path, r.methods, r) for r in app.routes]
    else:
        pairs = [(c.path, c.methods, c.original_route) for c in iter_route_contexts(app.routes)]
    entries = [(m, path, route) for path, methods, route in pairs for m in sorted(methods or ())]
    assert entries, "found no routes at all: the route walk is broken"
    return entries


def _api_routes(app) -> list[tuple[str, str, APIRoute]]:
    entries = [(m, p, r) for m, p, r in _route_entries(app) if isinstance(r, APIRoute)]
    paths = {p for _, p, _ in entries}
    # Guard against a walk that silently misses the included routers.
    assert {"/api/v1/me", ACTIONS, PARTICIPANTS, *ADMIN_ONLY[:3], "/api/v1/admin/audit"} <= paths, sorted(
        paths
    )
    return entries


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def _request_kwargs(route: APIRoute) -> dict:
    """A minimal valid body for the route, chosen by the type of its body parameter."""
    body_params = [p.name for p in route.dependant.body_params]
    if not body_params:
        return {}
    hints = typing.get_type_hints(route.endpoint)
    assert len(body_params) == 1, f"{route.name}: several body parameters; teach _request_kwargs about them"
    kind = hints[body_params[0]]
    if kind is UploadFile:
        return {"files": {body_params[0]: ("participants.csv", CSV.encode(), "text/csv")}}
    assert kind in BODY_BY_MODEL, f"{route.name}: add a minimal valid {kind.__name__} to BODY_BY_MODEL"
    return {"json": BODY_BY_MODEL[kind]}


def _roles_refused(path: str) -> set[str]:
    """Who must get 403 on `path`, by prefix; every API path must fall in a known group."""
    if path.startswith(ADMIN_ONLY) or path in ADMIN_ONLY_PATHS:
        return {"centralist", "utrecht"}
    if path.startswith((ACTIONS, TIPS, TEMPLATES)) or path in CENTRALIST_PATHS:
        return {"utrecht"}
    if path.startswith((PARTICIPANTS, AREA, MESSAGES)):
        return {"centralist"}
    assert path in ANY_ROLE or path in PUBLIC_PATHS | SESSION_PATHS, (
        f"{path} belongs to no access group; add its prefix to the role matrix in this file"
    )
    return set()


def test_minimal_bodies_are_valid():
    for model, body in BODY_BY_MODEL.items():
        model.model_validate(body)


# --- authentication ------------------------------------------------------------------------


def test_every_route_but_the_public_ones_needs_a_key(api):
    failures = []
    for method, path, _route in _api_routes(api.client.app):
        if path in PUBLIC_PATHS | SESSION_PATHS:
            continue
        url = _concrete(path)
        for label, headers in (("no key", {}), ("wrong key", {"Authorization": "Bearer bn_wrong"})):
            r = api.client.request(method, url, headers=headers)
            if r.status_code != 401 or r.json().get("error_id") != "unauthenticated":
                failures.append(f"{method} {path} with {label}: {r.status_code} {r.text[:200]}")
    assert not failures, "\n".join(failures)


def test_public_set_is_exactly_what_answers_without_a_key(api):
    answered = {}
    for method, path, _route in _route_entries(api.client.app):
        r = api.client.request(method, _concrete(path))
        if r.status_code != 401:
            answered.setdefault(path, set()).add(f"{method} {r.status_code}")
    assert set(answered) == PUBLIC_PATHS | SESSION_PATHS, answered
    # And they really work, rather than failing in some other way.
    for path in PUBLIC_PATHS:
        assert api.client.get(path).status_code == 200, path


@pytest.mark.parametrize(
    "authorization",
    ["Bearer bn_wrong", "Bearer", "Basic dXNlcjpwYXNz", "bn_no_scheme", "Bearer bn_" + "x" * 5000],
)
def test_malformed_or_unknown_keys_are_refused(api, authorization):
    r = api.client.get("/api/v1/me", headers={"Authorization": authorization})
    assert r.status_code == 401, r.text
    assert r.json()["error_id"] == "unauthenticated"


def test_the_bearer_scheme_is_case_insensitive(api):
    key = api.keys["admin"]
    assert api.client.get("/api/v1/me", headers={"Authorization": f"bearer {key}"}).status_code == 200


# --- roles ----------------------------------------------------------------------------------


def test_role_matrix_refuses_with_403_before_looking_at_the_body(api):
    """Without any body: the 403 comes from the role dependency, which FastAPI runs before it
    reports the missing body (observed; see the module docstring)."""
    failures, checked = [], 0
    for method, path, _route in _api_routes(api.client.app):
        for who in sorted(_roles_refused(path)):
            checked += 1
            r = api.client.request(method, _concrete(path), headers=api.as_(who))
            if r.status_code != 403 or r.json().get("error_id") != "forbidden":
                failures.append(f"{method} {path} as {who}: {r.status_code} {r.text[:200]}")
    assert checked >= 20, f"only {checked} role checks: the route walk lost routes"
    assert not failures, "\n".join(failures)


def test_role_matrix_refuses_with_403_even_with_a_valid_body(api):
    failures = []
    for method, path, route in _api_routes(api.client.app):
        kwargs = _request_kwargs(route)
        for who in sorted(_roles_refused(path)):
            r = api.client.request(method, _concrete(path), headers=api.as_(who), **kwargs)
            if r.status_code != 403 or r.json().get("error_id") != "forbidden":
                failures.append(f"{method} {path} as {who}: {r.status_code} {r.text[:200]}")
    assert not failures, "\n".join(failures)
    # Nothing was written by the refused requests.
    with api.sessions() as s:
        assert s.scalars(select(Participant)).all() == []
        assert {u.name for u in s.scalars(select(User))} == {"admin", "centralist", "utrecht", "zeist"}


def test_allowed_roles_get_past_the_role_check(api):
    """The other side of the matrix: nobody is refused where the matrix lets them in (a route
    may still answer 404/409/422 for the made-up id 1, but never 401 or 403)."""
    failures = []
    for method, path, route in _api_routes(api.client.app):
        if path in PUBLIC_PATHS | SESSION_PATHS:
            continue
        for who in sorted({"admin", "centralist", "utrecht"} - _roles_refused(path)):
            # A server-sent-events stream never ends: look at its status, then hang up.
            with api.client.stream(
                method, _concrete(path), headers=api.as_(who), **_request_kwargs(route)
            ) as r:
                status, text = (
                    r.status_code,
                    "" if path.endswith("/stream") else r.read().decode(errors="replace"),
                )
            # A municipality may be refused a figure that would reveal another (gateway.policy): a
            # decision about the data, not about her role.
            if status == 403 and '"reason":"group-too-small"' in text:
                continue
            if status in (401, 403) or status >= 500:
                failures.append(f"{method} {path} as {who}: {status} {text[:200]}")
    assert not failures, "\n".join(failures)


# --- one municipality cannot touch another's participants ----------------------------------


def test_municipalities_see_and_change_only_their_own_participants(api):
    created = api.call("utrecht", "POST", "/api/v1/participants", expect=201, json=PARTICIPANT)
    pid = created["id"]
    assert created["municipality_id"] == api.utrecht.id
    url = f"/api/v1/participants/{pid}"
    other = {**PARTICIPANT, "name": "Piet Overgenomen"}

    for method, kwargs in (("GET", {}), ("PUT", {"json": other}), ("DELETE", {}), ("POST", {})):
        target = f"{url}/unsubscribe" if method == "POST" else url
        body = api.call("zeist", method, target, expect=403, **kwargs)
        assert body["error_id"] == "forbidden", body

    # Zeist's list does not show it, even when searching for it by name or number.
    assert api.call("zeist", "GET", "/api/v1/participants") == []
    assert api.call("zeist", "GET", "/api/v1/participants", params={"q": "Jansen"}) == []
    assert api.call("zeist", "GET", "/api/v1/participants", params={"q": "345678"}) == []
    # A municipality user cannot widen her scope with the admins' filter either.
    assert api.call("zeist", "GET", "/api/v1/participants", params={"municipality_id": api.utrecht.id}) == []

    # Utrecht and the admin see it, unchanged by Zeist's attempts.
    mine = api.call("utrecht", "GET", url)
    assert mine["name"] == "Jan Jansen" and mine["unsubscribed_at"] is None
    assert [p["id"] for p in api.call("utrecht", "GET", "/api/v1/participants")] == [pid]
    assert [p["id"] for p in api.call("admin", "GET", "/api/v1/participants")] == [pid]
    assert [
        p["id"]
        for p in api.call("admin", "GET", "/api/v1/participants", params={"municipality_id": api.utrecht.id})
    ] == [pid]
    assert api.call("admin", "GET", "/api/v1/participants", params={"municipality_id": api.zeist.id}) == []
    assert api.call("admin", "GET", url)["id"] == pid


def test_a_municipality_cannot_register_or_import_into_another(api):
    # In the body of a create: refused as a business-rule error naming the field.
    body = api.call(
        "zeist",
        "POST",
        "/api/v1/participants",
        expect=422,
        json={**PARTICIPANT, "municipality_id": api.utrecht.id},
    )
    assert body["error_id"] == "invalid" and body["details"] == {"field": "municipality_id"}, body

    # Through ?municipality_id on the import: the code answers 422 (not 403), naming the field,
    # before it reads the file.
    r = api.client.post(
        "/api/v1/participants/import",
        params={"municipality_id": api.utrecht.id},
        files={"file": ("participants.csv", CSV.encode(), "text/csv")},
        headers=api.as_("zeist"),
    )
    assert r.status_code == 422, r.text
    assert r.json()["error_id"] == "invalid"
    assert r.json()["details"] == {"field": "municipality_id"}
    assert "its own participants" in r.json()["message"]

    with api.sessions() as s:
        assert s.scalars(select(Participant)).all() == []
    # Naming her own municipality is allowed.
    report = api.call(
        "zeist",
        "POST",
        "/api/v1/participants/import",
        params={"municipality_id": api.zeist.id},
        files={"file": ("participants.csv", CSV.encode(), "text/csv")},
    )
    assert report["created"] == 1 and report["errors"] == []
    assert [p["municipality_id"] for p in api.call("admin", "GET", "/api/v1/participants")] == [api.zeist.id]


# --- API keys --------------------------------------------------------------------------------


def test_keys_are_stored_only_as_a_hash_and_inactive_users_are_refused(api):
    created = api.call(
        "admin",
        "POST",
        "/api/v1/users",
        expect=201,
        json={"name": "loket-utrecht", "role": "municipality", "municipality_id": api.utrecht.id},
    )
    key = created["api_key"]
    assert key.startswith(auth.KEY_PREFIX) and len(key) > 30
    assert created["key_prefix"] == key[: len(created["key_prefix"])]
    headers = {"Authorization": f"Bearer {key}"}

    me = api.client.get("/api/v1/me", headers=headers)
    assert me.status_code == 200, me.text
    assert me.json()["name"] == "loket-utrecht" and me.json()["role"] == "municipality"
    assert key not in me.text

    # Not in any column of any user row.
    with api.sessions() as s:
        rows = s.execute(select(User.__table__)).mappings().all()
        assert len(rows) == 5
        for row in rows:
            for column, value in row.items():
                assert key not in str(value), f"api_user.{column} holds the key"
        stored = s.scalars(select(User).where(User.name == "loket-utrecht")).one()
        assert stored.key_hash == auth.hash_key(api.settings.secret_key, key)

    # Nor in the listing, which shows neither key nor hash.
    listing = api.client.get("/api/v1/users", headers=api.as_("admin"))
    assert key not in listing.text and stored.key_hash not in listing.text

    with api.sessions() as s:
        s.get(User, created["id"]).active = False
        s.commit()
    r = api.client.get("/api/v1/me", headers=headers)
    assert r.status_code == 401, r.text
    assert r.json()["error_id"] == "unauthenticated"
    # Also on a route that would otherwise let a municipality in.
    assert api.client.get("/api/v1/participants", headers=headers).status_code == 401


# --- bodies are not parsed for anonymous callers ------------------------------------------------


def test_malformed_json_without_a_key_is_401(api):
    r = api.client.post("/api/v1/actions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 401, r.text
