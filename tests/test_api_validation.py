"""Bad input gets a 422 that names the field, and the server keeps serving afterwards.

Two shapes of 422 exist: schema errors (details.errors = [{"field": "body.x", "message"}],
message "<field>: <msg>") and business-rule errors from gateway.errors.Invalid
(details.field = "x"). `_fields` reads both.
"""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gateway.storage.models import Participant

PARTICIPANTS = "/api/v1/participants"
IMPORT = "/api/v1/participants/import"
ACTIONS = "/api/v1/actions"


def _address(**changes) -> dict:
    return {
        "postcode": "3511 AB",
        "house_number": "12",
        "lat": 52.09,
        "lon": 5.12,
        "channel": "sms",
        **changes,
    }


def _participant(address: dict | None = None, **changes) -> dict:
    return {"name": "Jan Jansen", "phone": "0612345678", "addresses": [address or _address()], **changes}


def _action(**changes) -> dict:
    return {
        "type": "burglary",
        "description": "Man in rode jas op een fiets",
        "lat": 52.09,
        "lon": 5.12,
        "radius_m": 1000,
        **changes,
    }


def _fields(body: dict) -> set[str]:
    """The fields a 422 names, in either of its two shapes."""
    details = body.get("details") or {}
    if "errors" in details:
        return {e["field"] for e in details["errors"]}
    return {details["field"]} if details.get("field") else set()


def _invalid(api, who, method, path, **kw) -> dict:
    """Send, expect a well-formed 422, and check that the server still answers afterwards."""
    r = api.client.request(method, path, headers=api.as_(who), **kw)
    assert r.status_code == 422, f"{method} {path}: {r.status_code} {r.text}"
    body = r.json()
    assert body["error_id"] == "invalid", body
    assert set(body) == {"error_id", "message", "details"}, body
    assert body["message"], body
    if "errors" in body["details"]:
        first = body["details"]["errors"][0]
        assert body["message"] == f"{first['field']}: {first['message']}", body
    _still_serving(api, who)
    return body


def _still_serving(api, who="admin"):
    assert api.client.get("/health").status_code == 200
    assert api.call(who, "GET", "/api/v1/me")["name"] == who


def _no_raise(api) -> TestClient:
    """A client that turns an unhandled exception into the 500 a real client would see."""
    return TestClient(api.client.app, raise_server_exceptions=False)


def _import(api, data: bytes, who="utrecht", **kw):
    return api.client.post(
        IMPORT, files={"file": ("participants.csv", data, "text/csv")}, headers=api.as_(who), **kw
    )


# --- participants ----------------------------------------------------------------------------


@pytest.mark.parametrize("phone", ["12345", "06-1234", "+999123", "", "0612345678901234567890"])
def test_bad_phone_numbers_are_refused(api, phone):
    body = _invalid(api, "utrecht", "POST", PARTICIPANTS, json=_participant(phone=phone))
    assert _fields(body) == {"body.phone"}, body
    assert "phone" in body["message"]


@pytest.mark.parametrize("phone", ["0612345678", "+31612345678", "0031612345678", "06 12 34 56 78"])
def test_dutch_mobile_numbers_in_any_spelling_are_stored_as_e164(api, phone):
    created = api.call("utrecht", "POST", PARTICIPANTS, expect=201, json=_participant(phone=phone))
    assert created["phone"] == "+31612345678"


@pytest.mark.parametrize(
    "address",
    [
        _address(postcode="35111 AB"),
        _address(postcode="ABCD"),
        _address(postcode="0511 AB"),
        _address(country="DE", postcode="3511 AB"),
        _address(country="BE", postcode="35111"),
    ],
    ids=["nl-five-digits", "letters-only", "nl-leading-zero", "nl-code-for-de", "be-five-digits"],
)
def test_bad_postcodes_are_refused(api, address):
    body = _invalid(api, "utrecht", "POST", PARTICIPANTS, json=_participant(address))
    assert "postcode" in body["message"], body
    # The model validator that checks the postcode against the country names the address,
    # not the postcode field itself.
    assert _fields(body) == {"body.addresses.0.postcode"}, body


def test_nl_postcodes_are_normalised(api):
    created = api.call(
        "utrecht", "POST", PARTICIPANTS, expect=201, json=_participant(_address(postcode=" 3511ab "))
    )
    assert created["addresses"][0]["postcode"] == "3511 AB"


def test_a_landline_cannot_receive_sms(api):
    body = _invalid(api, "utrecht", "POST", PARTICIPANTS, json=_participant(phone="0301234567"))
    assert "cannot receive SMS" in body["message"], body
    assert _fields(body) == {"body"}, body
    # The same number by voice is fine.
    created = api.call(
        "utrecht",
        "POST",
        PARTICIPANTS,
        expect=201,
        json=_participant(_address(channel="voice"), phone="0301234567"),
    )
    assert created["phone"] == "+31301234567"


@pytest.mark.parametrize(
    "window, says, field",
    [
        ({"window_start": "07:00"}, "window_end", "body.addresses.0"),
        ({"window_end": "22:00"}, "window_start", "body.addresses.0"),
        ({"window_start": "07:00", "window_end": "07:00"}, "equal", "body.addresses.0"),
        ({"window_start": "7:00", "window_end": "22:00"}, "HH:MM", "body.addresses.0.window_start"),
        ({"window_start": "06:00", "window_end": "24:00"}, "HH:MM", "body.addresses.0.window_end"),
    ],
)
def test_receive_windows_must_be_complete_and_well_formed(api, window, says, field):
    body = _invalid(api, "utrecht", "POST", PARTICIPANTS, json=_participant(_address(**window)))
    assert says in body["message"], body
    assert _fields(body) == {field}, body


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"name": ""}, "body.name"),
        ({"name": "   "}, "body.name"),
        ({"name": "Jan\x00Jansen"}, "body.name"),
        ({"addresses": []}, "body.addresses"),
        ({"language": "xx"}, "body.language"),
        ({"pause_from": "2030-02-01", "pause_until": "2030-01-01"}, "body"),
        ({"unexpected": 1}, "body.unexpected"),
    ],
)
def test_other_participant_fields_are_checked(api, changes, field):
    body = _invalid(api, "utrecht", "POST", PARTICIPANTS, json=_participant(**changes))
    assert field in _fields(body), body


# --- actions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("radius", [0, -5, 60_000, 10**30])
def test_radius_must_be_positive_and_within_the_maximum(api, radius):
    assert api.settings.max_radius_m == 50_000
    body = _invalid(api, "centralist", "POST", ACTIONS, json=_action(radius_m=radius))
    assert _fields(body) <= {"body.radius_m", "radius_m"} and _fields(body), body
    assert "radius_m" in body["message"], body


def test_the_maximum_radius_itself_is_allowed(api):
    created = api.call(
        "centralist", "POST", ACTIONS, expect=201, json=_action(radius_m=api.settings.max_radius_m)
    )
    assert created["radius_m"] == 50_000


@pytest.mark.parametrize("description", ["", "   ", "\t\n"])
def test_empty_descriptions_are_refused(api, description):
    body = _invalid(api, "centralist", "POST", ACTIONS, json=_action(description=description))
    assert _fields(body) == {"body.description"}, body


@pytest.mark.parametrize(
    "description",
    ["x" * 1000, "ŵ" * 500],  # GSM 7-bit (7 parts) and UCS-2 (8 parts) against the limit of 6
    ids=["gsm7", "ucs2"],
)
def test_descriptions_that_need_too_many_sms_parts_are_refused(api, description):
    assert api.settings.sms_max_parts == 6
    body = _invalid(api, "centralist", "POST", ACTIONS, json=_action(description=description))
    assert _fields(body) == {"description"}, body
    assert "SMS" in body["message"] and "6" in body["message"], body


def test_descriptions_longer_than_the_schema_allows_are_refused(api):
    body = _invalid(api, "centralist", "POST", ACTIONS, json=_action(description="x" * 1001))
    assert _fields(body) == {"body.description"}, body


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"channels": []}, "body.channels"),
        ({"channels": ["fax"]}, "body.channels.0"),
        ({"description": "Man in\x00 rode jas"}, "body.description"),
        ({"description": "Man in\x1b rode jas"}, "body.description"),
        ({"type": "alien_landing"}, "body.type"),
        ({"lat": 91}, "body.lat"),
        ({"lon": -181}, "body.lon"),
        ({"radius_m": "ver weg"}, "body.radius_m"),
    ],
)
def test_other_action_fields_are_checked(api, changes, field):
    body = _invalid(api, "centralist", "POST", ACTIONS, json=_action(**changes))
    assert field in _fields(body), body
    if "\x00" in str(changes):
        assert "control characters" in body["message"]


def test_a_draft_edit_is_checked_like_a_create(api):
    action = api.call("centralist", "POST", ACTIONS, expect=201, json=_action())
    url = f"{ACTIONS}/{action['id']}"
    assert _fields(_invalid(api, "centralist", "PATCH", url, json={"radius_m": 60_000})) == {"radius_m"}
    assert _fields(_invalid(api, "centralist", "PATCH", url, json={"description": "x" * 1000})) == {
        "description"
    }
    assert _fields(_invalid(api, "centralist", "PATCH", url, json={"channels": []})) == {"body.channels"}
    # None of the refused edits stuck.
    again = api.call("centralist", "GET", url)
    assert (again["radius_m"], again["description"], again["channels"]) == (
        1000,
        action["description"],
        ["sms", "voice"],
    )


# --- ids in the path -------------------------------------------------------------------------

UNKNOWN_ACTION_CALLS = [
    ("GET", "", None),
    ("PATCH", "", {"description": "Man in blauwe jas"}),
    ("GET", "/preview", None),
    ("POST", "/launch", None),
    ("POST", "/updates", {"text": "Hij draagt nu een pet"}),
    ("POST", "/close", {"outcome": "none"}),
    ("GET", "/progress", None),
]


@pytest.mark.parametrize("method, suffix, json", UNKNOWN_ACTION_CALLS)
def test_unknown_actions_are_404(api, method, suffix, json):
    body = api.call("centralist", method, f"{ACTIONS}/999999{suffix}", expect=404, json=json)
    assert body["error_id"] == "not-found" and "999999" in body["message"], body
    _still_serving(api, "centralist")


@pytest.mark.parametrize("method, suffix, json", UNKNOWN_ACTION_CALLS)
@pytest.mark.parametrize("action_id", [2**70, 2**31, 0, -1, "abc", "1.5"])
def test_out_of_range_action_ids_are_422(api, method, suffix, json, action_id):
    body = _invalid(api, "centralist", method, f"{ACTIONS}/{action_id}{suffix}", json=json)
    assert "path.action_id" in _fields(body), body


@pytest.mark.parametrize(
    "method, suffix, json",
    [("GET", "", None), ("PUT", "", _participant()), ("DELETE", "", None), ("POST", "/unsubscribe", None)],
)
@pytest.mark.parametrize("participant_id", [2**70, 2**63, 0, "abc"])
def test_out_of_range_participant_ids_are_422(api, method, suffix, json, participant_id):
    body = _invalid(api, "utrecht", method, f"{PARTICIPANTS}/{participant_id}{suffix}", json=json)
    assert "path.participant_id" in _fields(body), body


@pytest.mark.parametrize(
    "params, field",
    [
        ({"limit": 0}, "query.limit"),
        ({"limit": 501}, "query.limit"),
        ({"offset": -1}, "query.offset"),
        ({"offset": 2**70}, "query.offset"),
        ({"municipality_id": 2**70}, "query.municipality_id"),
        ({"q": "x" * 101}, "query.q"),
    ],
)
def test_bad_query_parameters_are_422(api, params, field):
    body = _invalid(api, "admin", "GET", PARTICIPANTS, params=params)
    assert _fields(body) == {field}, body


@pytest.mark.parametrize("q", ["\x00", "Jan\x00", "12\x00"])
def test_a_nul_in_the_search_text_is_422(api, q):
    api.call("utrecht", "POST", PARTICIPANTS, expect=201, json=_participant())
    r = _no_raise(api).get(PARTICIPANTS, params={"q": q}, headers=api.as_("utrecht"))
    assert r.status_code == 422, r.text
    assert _fields(r.json()) == {"query.q"}
    _still_serving(api, "utrecht")


def test_like_wildcards_in_the_search_text_are_literal(api):
    api.call("utrecht", "POST", PARTICIPANTS, expect=201, json=_participant())
    assert api.call("utrecht", "GET", PARTICIPANTS, params={"q": "%"}) == []
    assert api.call("utrecht", "GET", PARTICIPANTS, params={"q": "_"}) == []


# --- bodies that are not JSON objects ---------------------------------------------------------


@pytest.mark.parametrize(
    "content, content_type",
    [
        (b"{not json", "application/json"),
        (b'{"type": "burglary",', "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b"[]", "application/json"),
        (b"null", "application/json"),
        (b'"a string"', "application/json"),
    ],
    ids=["garbage", "truncated", "not-utf8", "array", "null", "string"],
)
def test_malformed_json_is_422(api, content, content_type):
    r = api.client.post(
        ACTIONS, content=content, headers={**api.as_("centralist"), "Content-Type": content_type}
    )
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error_id"] == "invalid" and body["details"]["errors"], body
    assert all(f["field"].startswith("body") for f in body["details"]["errors"]), body
    _still_serving(api, "centralist")


@pytest.mark.parametrize(
    "content, content_type",
    [
        (b'{"type": "burglary"}', "text/plain"),
        (b"type=burglary&radius_m=5", "application/x-www-form-urlencoded"),
        (b"<action/>", "application/xml"),
        (b'{"type": "burglary"}', None),
    ],
    ids=["text-plain", "form", "xml", "no-content-type"],
)
def test_wrong_content_type_is_422(api, content, content_type):
    headers = api.as_("centralist")
    if content_type:
        headers["Content-Type"] = content_type
    r = api.client.post(ACTIONS, content=content, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["error_id"] == "invalid"
    assert _fields(r.json()) == {"body"}, r.text
    _still_serving(api, "centralist")


def test_a_json_body_to_the_import_is_422(api):
    body = _invalid(api, "utrecht", "POST", IMPORT, json={"file": "name,phone"})
    assert _fields(body) == {"body.file"}, body


@pytest.mark.parametrize(
    "method, path, kwargs, status",
    [
        pytest.param(
            "POST",
            IMPORT,
            {"content": b"garbage", "headers": {"Content-Type": "multipart/form-data; boundary=xyz"}},
            422,
            id="broken-multipart",
        ),
        pytest.param(
            "POST",
            IMPORT,
            {"content": b"garbage", "headers": {"Content-Type": "multipart/form-data"}},
            422,
            id="multipart-without-boundary",
        ),
        pytest.param(
            "GET",
            "/api/v1/no-such-thing",
            {},
            404,
            id="unknown-path",
        ),
        pytest.param(
            "DELETE",
            "/api/v1/me",
            {},
            405,
            id="method-not-allowed",
        ),
    ],
)
def test_framework_errors_use_the_error_shape(api, method, path, kwargs, status):
    extra = {k: v for k, v in kwargs.items() if k != "headers"}
    headers = {**api.as_("utrecht"), **kwargs.get("headers", {})}
    r = api.client.request(method, path, headers=headers, **extra)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error_id", "message", "details"}, r.text
    _still_serving(api, "utrecht")


# --- CSV import ------------------------------------------------------------------------------

HEADER = "name,phone,postcode,house_number,lat,lon,channel\n"
GOOD_ROWS = (
    "Anna de Vries,0612345671,3511 AB,1,52.09,5.12,sms\nCarla Claes,0612345673,3511 AC,3,52.09,5.12,voice\n"
)
MIXED = (
    HEADER
    + "Anna de Vries,0612345671,3511 AB,1,52.09,5.12,sms\n"  # line 2
    + "Bert Bakker,12345,3511 AB,2,52.09,5.12,sms\n"  # line 3: bad phone
    + "Carla Claes,0612345673,3511 AC,3,52.09,5.12,voice\n"  # line 4
    + "Dirk Dekker,0612345674,ABCD,4,52.09,5.12,sms\n"  # line 5: bad postcode
)


def _count_participants(api) -> int:
    with api.sessions() as s:
        return s.scalar(select(func.count()).select_from(Participant))


def test_import_reports_bad_rows_by_line_and_imports_the_rest(api):
    r = _import(api, MIXED.encode())
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["rows"], report["created"], report["updated"]) == (4, 2, 0), report
    assert [(e["row"], e["field"]) for e in report["errors"]] == [(3, "phone"), (5, "postcode")], report
    assert "ABCD" in report["errors"][1]["message"]
    names = sorted(p["name"] for p in api.call("utrecht", "GET", PARTICIPANTS))
    assert names == ["Anna de Vries", "Carla Claes"]
    assert {p["municipality_id"] for p in api.call("admin", "GET", PARTICIPANTS)} == {api.utrecht.id}
    _still_serving(api, "utrecht")


def test_reimporting_a_file_updates_instead_of_creating(api):
    data = (HEADER + GOOD_ROWS).encode()
    first = api.call("utrecht", "POST", IMPORT, files={"file": ("p.csv", data, "text/csv")})
    assert (first["rows"], first["created"], first["updated"], first["errors"]) == (2, 2, 0, [])
    ids = sorted(p["id"] for p in api.call("utrecht", "GET", PARTICIPANTS))
    again = api.call("utrecht", "POST", IMPORT, files={"file": ("p.csv", data, "text/csv")})
    assert (again["rows"], again["created"], again["updated"], again["errors"]) == (2, 0, 2, [])
    after = api.call("utrecht", "GET", PARTICIPANTS)
    assert sorted(p["id"] for p in after) == ids
    # Each participant still has its one address, not a second copy of it.
    assert [len(p["addresses"]) for p in after] == [1, 1]


def test_import_accepts_a_utf8_bom(api):
    report = api.call(
        "utrecht",
        "POST",
        IMPORT,
        files={"file": ("p.csv", ("\ufeff" + HEADER + GOOD_ROWS).encode(), "text/csv")},
    )
    assert report["created"] == 2 and report["errors"] == []


@pytest.mark.parametrize(
    "data",
    [(HEADER + "Änne Müller,0612345678,3511 AB,1,52.09,5.12,sms\n").encode("latin-1"), b"\xff\xfe\x00n\x00a"],
    ids=["latin-1", "utf-16ish"],
)
def test_a_non_utf8_file_is_422(api, data):
    r = _import(api, data)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error_id"] == "invalid" and body["details"] == {"field": "file"}, body
    assert "UTF-8" in body["message"]
    assert _count_participants(api) == 0
    _still_serving(api, "utrecht")


@pytest.mark.parametrize(
    "header, missing",
    [
        ("name,postcode,house_number,lat,lon\n", "phone"),
        ("naam,telefoon,postcode,huisnummer,lat,lon\n", "name, phone, house_number"),
        ("", "name, phone, postcode, house_number, lat, lon"),
    ],
    ids=["no-phone", "dutch-headers", "empty-file"],
)
def test_a_header_missing_required_columns_is_reported_on_line_1(api, header, missing):
    data = (header + ("Anna,3511 AB,1,52.09,5.12\n" if header else "")).encode()
    report = api.call("utrecht", "POST", IMPORT, files={"file": ("p.csv", data, "text/csv")})
    assert report["created"] == report["updated"] == 0
    assert len(report["errors"]) == 1, report
    error = report["errors"][0]
    assert error["row"] == 1 and error["message"].endswith(missing), report
    assert _count_participants(api) == 0


def test_import_without_a_file_is_422(api):
    body = _invalid(api, "utrecht", "POST", IMPORT)
    assert _fields(body) == {"body.file"}, body


def test_an_admin_must_say_which_municipality_an_import_is_for(api):
    data = (HEADER + GOOD_ROWS).encode()
    body = _invalid(api, "admin", "POST", IMPORT, files={"file": ("p.csv", data, "text/csv")})
    assert _fields(body) == {"municipality_id"}, body
    body = _invalid(
        api,
        "admin",
        "POST",
        IMPORT,
        params={"municipality_id": 999_999},
        files={"file": ("p.csv", data, "text/csv")},
    )
    assert _fields(body) == {"municipality_id"}, body
    report = api.call(
        "admin",
        "POST",
        IMPORT,
        params={"municipality_id": api.zeist.id},
        files={"file": ("p.csv", data, "text/csv")},
    )
    assert report["created"] == 2


@pytest.mark.parametrize("where", ["row", "stray-quote"])
def test_an_oversized_csv_field_is_not_a_server_error(api, where):
    if where == "row":
        data = HEADER + "Anna de Vries,06" + "1" * 200_000 + ",3511 AB,1,52.09,5.12,sms\n"
    else:
        data = HEADER + '"Anna de Vries,0612345671,3511 AB,1,52.09,5.12,sms\n' + GOOD_ROWS * 3000
    r = _no_raise(api).post(
        IMPORT, files={"file": ("p.csv", data.encode(), "text/csv")}, headers=api.as_("utrecht")
    )
    assert r.status_code == 200, f"{r.status_code} {r.text[:300]}"
    assert any("unreadable CSV" in e["message"] for e in r.json()["errors"]), r.text[:300]
    _still_serving(api, "utrecht")
