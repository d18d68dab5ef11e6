"""Input an outside tester tried that once gave 500s (issue 17): each is now a 422 that names
what is wrong — and an unexpected error still answers in the error shape.

Defects: 1 non-finite / huge CAP areas, 2 dates at the edges of the calendar on the statistics
routes, 3 characters XML 1.0 forbids (which broke the CAP export for good), 8 a body parsed
before the key was checked, 9 a radius given as `true` or "100".
"""

import json
import logging

import pytest
from fastapi.testclient import TestClient

from gateway.storage.models import Action, ActionType

ACTIONS = "/api/v1/actions"
IMPORT_CAP = "/api/v1/actions/import-cap"
STATS = ("summary", "signups", "by-municipality", "by-type")
ACTION = {"type": "burglary", "description": "Man in rode jas", "lat": 52.09, "lon": 5.12, "radius_m": 1000}
PARTICIPANT = {
    "name": "Jan Jansen",
    "phone": "0612345678",
    "addresses": [{"postcode": "3511 AB", "house_number": "12", "lat": 52.09, "lon": 5.12}],
}


def _no_raise(api) -> TestClient:
    """A client that sees what a real client sees when the app fails (no exception re-raised)."""
    return TestClient(api.client.app, raise_server_exceptions=False)


def _cap(area: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>NL-ALERT-1</identifier><sender>x@example.nl</sender><sent>2026-01-05T10:00:00+01:00</sent>
  <status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
  <info><category>Rescue</category><event>Vermissing</event><urgency>Immediate</urgency>
    <severity>Severe</severity><certainty>Likely</certainty><description>Meisje, roze jas.</description>
    <area><areaDesc>x</areaDesc>{area}</area></info>
</alert>""".encode()


# --- 1: CAP areas ---------------------------------------------------------------------------------


HUGE_POLYGON = "<polygon>" + " ".join(["1e308,1e308"] * 5) + "</polygon>"


@pytest.mark.parametrize(
    "area, field",
    [
        ("<circle>52.09,5.12 1e306</circle>", "info.area.circle"),
        ("<circle>52.09,5.12 inf</circle>", "info.area.circle"),
        ("<circle>52.09,5.12 1e400</circle>", "info.area.circle"),
        ("<circle>52.09,5.12 nan</circle>", "info.area.circle"),
        ("<circle>52.09,5.12 -3</circle>", "info.area.circle"),
        ("<circle>nan,5.12 3</circle>", "info.area.circle"),
        ("<circle>52.09,inf 3</circle>", "info.area.circle"),
        (HUGE_POLYGON, "info.area.polygon"),
        ("<polygon>52,5 52,inf 53,6 52,5</polygon>", "info.area.polygon"),
        ("<polygon>52,5 52,5,1 53,6 52,5</polygon>", "info.area.polygon"),
    ],
)
def test_a_cap_area_that_is_no_place_on_earth_is_422_naming_the_area(api, area, field):
    r = _no_raise(api).post(
        IMPORT_CAP, content=_cap(area), headers={"Content-Type": "application/xml", **api.as_("centralist")}
    )
    assert r.status_code == 422, r.text
    assert r.json()["error_id"] == "invalid" and r.json()["details"]["field"] == field


# --- 2: dates on the statistics routes -----------------------------------------------------------


@pytest.mark.parametrize(
    "params, field",
    [
        ({"to": "0001-01-01"}, "query.to"),
        ({"from": "9999-12-30", "to": "9999-12-31"}, "query.from"),
        ({"from": "0001-01-01", "to": "0001-01-02"}, "query.from"),
        ({"to": "9999-12-31"}, "query.to"),
    ],
)
def test_dates_at_the_edges_of_the_calendar_are_422_naming_the_parameter(api, params, field):
    client = _no_raise(api)
    for who in ("admin", "centralist", "utrecht"):
        for path in STATS:
            r = client.get(f"/api/v1/stats/{path}", params=params, headers=api.as_(who))
            assert r.status_code == 422, (who, path, r.text)
            assert field in {e["field"] for e in r.json()["details"]["errors"]}, r.json()


def test_a_pause_at_the_edge_of_the_calendar_is_422(api):
    r = _no_raise(api).post(
        "/api/v1/participants", json={**PARTICIPANT, "pause_until": "9999-12-31"}, headers=api.as_("utrecht")
    )
    assert r.status_code == 422 and r.json()["details"]["errors"][0]["field"] == "body.pause_until"


# --- 3: characters XML 1.0 forbids -------------------------------------------------------------


XML_FORBIDDEN = ["\uffff", "\ufffe", "\x01", "\x1b", "\ud800"]


@pytest.mark.parametrize("char", XML_FORBIDDEN, ids=lambda c: f"U+{ord(c):04X}")
def test_text_xml_cannot_carry_is_refused_in_every_free_text_field(api, char):
    action = api.call("centralist", "POST", ACTIONS, expect=201, json=ACTION)
    launched = api.launch()
    text = f"Man met jas{char}"
    refused = [
        ("centralist", "POST", ACTIONS, {**ACTION, "description": text}, "body.description"),
        ("centralist", "PATCH", f"{ACTIONS}/{action['id']}", {"description": text}, "body.description"),
        ("centralist", "POST", f"{ACTIONS}/{launched['id']}/updates", {"text": text}, "body.text"),
        (
            "centralist",
            "POST",
            f"{ACTIONS}/{launched['id']}/close",
            {"outcome": "none", "note": text},
            "body.note",
        ),
        ("utrecht", "POST", "/api/v1/participants", {**PARTICIPANT, "name": text}, "body.name"),
        (
            "admin",
            "POST",
            "/api/v1/municipalities",
            {"cbs_code": "GM0307", "name": text, "region": "R"},
            "body.name",
        ),
        (
            "admin",
            "POST",
            "/api/v1/centralists",
            {"name": text, "meldkamer": "M", "dial_string": "PJSIP/1@mk"},
            "body.name",
        ),
    ]
    client = _no_raise(api)
    for who, method, path, body, field in refused:
        # JSON's \uXXXX escapes carry even a lone surrogate, which UTF-8 cannot.
        r = client.request(
            method,
            path,
            content=json.dumps(body),
            headers={"Content-Type": "application/json", **api.as_(who)},
        )
        assert r.status_code == 422, (path, r.text)
        assert r.json()["details"]["errors"][0]["field"] == field, r.text
    if char != "\ud800":  # a URL is UTF-8: it cannot carry a lone surrogate at all
        r = client.get("/api/v1/participants", params={"q": text}, headers=api.as_("utrecht"))
        assert r.status_code == 422 and r.json()["details"]["errors"][0]["field"] == "query.q"
    # The action stays exportable: nothing of the refused text was stored.
    assert client.get(f"{ACTIONS}/{launched['id']}/cap", headers=api.as_("centralist")).status_code == 200


def test_a_csv_name_xml_cannot_carry_is_a_row_error(api):
    csv = "name,phone,postcode,house_number,lat,lon\nJan\uffff,0612345678,3511 AB,1,52.09,5.12\n"
    r = api.client.post(
        "/api/v1/participants/import",
        files={"file": ("p.csv", csv.encode(), "text/csv")},
        headers=api.as_("utrecht"),
    )
    assert r.status_code == 200 and r.json()["created"] == 0
    assert r.json()["errors"][0]["field"] == "name"


def test_an_action_stored_with_such_text_before_still_exports(api):
    with api.sessions() as s:
        action = Action(
            type=ActionType.other,
            description="Oud\uffff\ufffe bericht",
            lat=52.09,
            lon=5.12,
            radius_m=1000,
            centralist_id=api.centralist.id,
        )
        s.add(action)
        s.commit()
    r = _no_raise(api).get(f"{ACTIONS}/{action.id}/cap", headers=api.as_("centralist"))
    assert r.status_code == 200, r.text
    assert "Oud\ufffd\ufffd bericht" in r.text


# --- 8: the key is checked before the body is read -----------------------------------------------


@pytest.mark.parametrize(
    "path, content_type",
    [
        (ACTIONS, "application/json"),
        ("/api/v1/participants/import", "multipart/form-data; boundary=x"),
        (IMPORT_CAP, "application/xml"),
    ],
)
def test_a_made_up_key_gets_401_before_a_large_body_is_parsed(api, path, content_type):
    body = b"{" * (4 * 1024 * 1024)  # 4 MB that no parser accepts
    r = _no_raise(api).post(
        path, content=body, headers={"Authorization": "Bearer made-up", "Content-Type": content_type}
    )
    assert r.status_code == 401, r.text[:200]
    assert r.json()["error_id"] == "unauthenticated"


# --- 9: a radius is a JSON integer ----------------------------------------------------------------


@pytest.mark.parametrize("radius", [True, False, "100", 100.5, 1e308, None, [100], {"m": 100}], ids=repr)
def test_a_radius_that_is_not_a_json_integer_is_422(api, radius):
    client = _no_raise(api)
    r = client.post(ACTIONS, json={**ACTION, "radius_m": radius}, headers=api.as_("centralist"))
    assert r.status_code == 422 and r.json()["details"]["errors"][0]["field"] == "body.radius_m", r.text
    draft = api.call("centralist", "POST", ACTIONS, expect=201, json=ACTION)
    if radius is not None:  # null in an edit means "leave as it is"
        r = client.patch(f"{ACTIONS}/{draft['id']}", json={"radius_m": radius}, headers=api.as_("centralist"))
        assert r.status_code == 422 and r.json()["details"]["errors"][0]["field"] == "body.radius_m", r.text


@pytest.mark.parametrize(
    "field, value", [("lat", "Infinity"), ("lon", "NaN"), ("lat", "-Infinity"), ("lat", "1e400")]
)
def test_non_finite_coordinates_are_422(api, field, value):
    # Python's JSON reader takes NaN and Infinity literals (and 1e400 as inf): send them raw.
    body = f'{{"type": "burglary", "description": "x", "lat": 52.09, "lon": 5.12, "radius_m": 10, "{field}": {value}}}'
    r = _no_raise(api).post(
        ACTIONS, content=body, headers={"Content-Type": "application/json", **api.as_("centralist")}
    )
    assert r.status_code == 422 and f"body.{field}" in {e["field"] for e in r.json()["details"]["errors"]}, (
        r.text
    )


# --- one error shape, even for a bug ----------------------------------------------------------------


def test_an_unexpected_error_is_a_500_in_the_error_shape_and_logged(api, caplog):
    def broken():
        raise ZeroDivisionError("a bug")

    api.client.app.add_api_route("/api/v1/broken-for-test", broken)
    with caplog.at_level(logging.ERROR, logger="gateway.api.app"):
        r = _no_raise(api).get("/api/v1/broken-for-test", headers=api.as_("admin"))
    assert r.status_code == 500
    assert r.json() == {
        "error_id": "internal",
        "message": "internal error; it has been logged",
        "details": {},
    }
    assert "a bug" not in r.text  # no traceback or message to the caller
    failed = [rec.getMessage() for rec in caplog.records if "broken-for-test failed" in rec.getMessage()]
    assert failed and "ZeroDivisionError: a bug" in failed[0] and "Traceback" in failed[0]
