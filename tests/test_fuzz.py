"""Permanent fuzzing with extreme values (issue 17, deliverable 7): every route, as every role,
with dates at the edges of the calendar, huge and non-finite numbers, text XML 1.0 forbids and
JSON of the wrong type — in path parameters, query parameters, JSON bodies, CSV files and CAP
documents. The one check: no 5xx. tests/test_schemathesis.py fuzzes from the OpenAPI schema;
this file aims at the values that schema-driven generation rarely tries.

Runs on PostgreSQL, on a database of its own (like test_schemathesis.py); the examples are
derandomized, so every run sends the same requests. The count of requests and 5xx is written
to the terminal at the end of the module.
"""

import json
import re
import tempfile
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import _pg_create, _pg_drop
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_api_security import _api_routes, _request_kwargs

from gateway import auth
from gateway.api.app import create_app
from gateway.config import Settings
from gateway.queue import MemoryQueue
from gateway.storage.db import make_engine, session_factory
from gateway.storage.migrate import upgrade
from gateway.storage.models import (
    Action,
    ActionStatus,
    ActionType,
    Address,
    Centralist,
    Channel,
    Municipality,
    Participant,
    Role,
    Tip,
    TipChannel,
    utcnow,
)
from gateway.targeting.geo import tile_of

pytestmark = pytest.mark.slow

EXAMPLES_PER_ROUTE = 60
SEED_ROWS = 3
TALLY: Counter = Counter()

# --- extreme values ---------------------------------------------------------------------------------

XML_FORBIDDEN = "\x00\x01\x08\x0b\x1b\x7f\ufffe\uffff"
SURROGATES = "\ud800\udfff"
EDGE_DATES = [
    "0001-01-01",
    "0001-01-02",
    "1999-12-31",
    "2000-01-01",
    "2199-12-31",
    "2200-01-01",
    "9999-12-30",
    "9999-12-31",
    "2026-02-30",
    "2026-13-01",
    "-2026-01-01",
    "20260101",
    "2026-01-01T25:00:00",
]
EDGE_INTS = [
    0,
    1,
    2,
    3,
    -1,
    2**31 - 1,
    2**31,
    -(2**31) - 1,
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63) - 1,
    10**30,
    10**400,
]
EDGE_FLOATS = [
    0.0,
    -0.0,
    1e-320,
    1e306,
    -1e306,
    1e308,
    float("inf"),
    float("-inf"),
    float("nan"),
    90.0000001,
    -180.5,
]

forbidden_text = st.text(
    alphabet=st.sampled_from(list(XML_FORBIDDEN) + list("aZ 0+#é€😀")), min_size=1, max_size=12
)
url_text = st.one_of(
    forbidden_text.filter(lambda t: "\x00" not in t),  # a URL cannot carry NUL through the test client
    st.sampled_from(
        EDGE_DATES
        + [
            "true",
            "null",
            "",
            " ",
            "1e308",
            "inf",
            "nan",
            "-0",
            "0x10",
            "+31612345678",
            "%",
            "GM0344",
            "x" * 2000,
        ]
    ),
    st.sampled_from(EDGE_INTS).map(str),
)
json_scalar = st.one_of(
    st.sampled_from(EDGE_INTS),
    st.sampled_from(EDGE_FLOATS),
    st.booleans(),
    st.none(),
    st.sampled_from(EDGE_DATES),
    forbidden_text,
    st.sampled_from([SURROGATES, "x" * 100_000, "", "100", "true"]),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def _mutated(body: dict) -> st.SearchStrategy:
    """A valid body with some of its fields (nested ones too) replaced, or extra ones added."""

    def replace(fields: dict, values: dict) -> dict:
        out = dict(fields)
        for name, value in values.items():
            if (
                name in out
                and isinstance(out[name], list)
                and out[name]
                and isinstance(out[name][0], dict)
                and isinstance(value, dict)
            ):
                out[name] = [replace(out[name][0], value)]
            else:
                out[name] = value
        return out

    nested = {
        name: st.dictionaries(st.sampled_from(sorted(v[0])), json_value, max_size=3)
        for name, v in body.items()
        if isinstance(v, list) and v and isinstance(v[0], dict)
    }
    changes = st.dictionaries(
        st.sampled_from(sorted(body) + ["unexpected"]), json_value, min_size=1, max_size=3
    )
    with_nested = st.tuples(changes, st.fixed_dictionaries({}, optional=nested)).map(
        lambda t: {**t[0], **t[1]}
    )
    return with_nested.map(lambda values: replace(body, values))


def _json_body(body: dict) -> st.SearchStrategy[bytes]:
    documents = st.one_of(_mutated(body), _mutated(body), json_value)  # mostly near-valid bodies
    # ensure_ascii: lone surrogates travel as \\uXXXX escapes; allow_nan: NaN and Infinity literals.
    return documents.map(lambda doc: json.dumps(doc, ensure_ascii=True, allow_nan=True).encode())


def _csv() -> st.SearchStrategy[bytes]:
    cell = st.one_of(
        url_text, st.sampled_from(["0612345678", "52.09", "5.12", "3511 AB", "1e400", "nan", "-inf"])
    )
    row = st.lists(cell, min_size=6, max_size=8).map(
        lambda cells: ",".join(c.replace(",", " ") for c in cells)
    )
    return st.lists(row, max_size=4).map(
        lambda rows: ("name,phone,postcode,house_number,lat,lon,language,channel\n" + "\n".join(rows)).encode(
            "utf-8", "replace"
        )
    )


def _cap() -> st.SearchStrategy[bytes]:
    number = st.one_of(
        st.sampled_from(["1e306", "inf", "-inf", "nan", "1e400", "-0", "0", "90.0000001", "1e-320"]),
        st.sampled_from(EDGE_FLOATS + EDGE_INTS[:8]).map(str),
    )
    circle = st.tuples(number, number, number).map(lambda t: f"<circle>{t[0]},{t[1]} {t[2]}</circle>")
    polygon = st.lists(st.tuples(number, number), min_size=1, max_size=6).map(
        lambda pts: "<polygon>" + " ".join(f"{a},{b}" for a, b in pts) + "</polygon>"
    )
    description = st.one_of(
        st.just("Meisje, roze jas."), st.sampled_from(["&#xFFFF;", "&#x1;", "&#xD800;", "x" * 2000])
    )
    return st.tuples(st.one_of(circle, polygon), description).map(
        lambda t: f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>F-1</identifier><sender>f@example.nl</sender>
<sent>2026-01-05T10:00:00+01:00</sent><status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
<info><category>Rescue</category><event>x</event><urgency>Immediate</urgency><severity>Severe</severity>
<certainty>Likely</certainty><description>{t[1]}</description><area><areaDesc>x</areaDesc>{t[0]}</area></info></alert>""".encode()
    )


# --- the world -----------------------------------------------------------------------------------------

SETTINGS = Settings(
    environment="test", secret_key="test-secret-" + uuid.uuid4().hex, data_dir=Path(tempfile.gettempdir())
)


def _seed(sessions) -> dict[str, str]:
    """Municipalities with participants, centralists with draft, open and closed actions, a tip; the keys."""
    with sessions() as s:
        keys = {"admin": auth.create_user(s, SETTINGS.secret_key, "fuzz-admin", Role.admin)[1]}
        for i in range(1, SEED_ROWS + 1):
            m = Municipality(cbs_code=f"GM{9000 + i}", name=f"Fuzzdorp {i}", region="Midden-Nederland")
            c = Centralist(
                name=f"Centralist {i}", meldkamer="Midden-Nederland", dial_string=f"PJSIP/40{i:02d}@mk"
            )
            s.add_all([m, c])
            s.flush()
            status = [ActionStatus.draft, ActionStatus.open, ActionStatus.closed][i - 1]
            launched = utcnow() if status != ActionStatus.draft else None
            action = Action(
                type=ActionType.burglary,
                description=f"Man in rode jas {i}",
                lat=52.09,
                lon=5.12,
                radius_m=1000,
                centralist_id=c.id,
                status=status,
                action_code=f"{1000 + i}" if launched else None,
                launched_at=launched,
                expires_at=launched and launched + timedelta(hours=2),
                closed_at=launched if status == ActionStatus.closed else None,
            )
            s.add(action)
            s.add(
                Participant(
                    municipality_id=m.id,
                    name=f"Deelnemer {i}",
                    phone=f"+3161234567{i}",
                    addresses=[
                        Address(
                            postcode="3511 AB",
                            house_number=str(i),
                            lat=52.09,
                            lon=5.12,
                            tile=tile_of(52.09, 5.12),
                            channel=Channel.sms,
                        )
                    ],
                )
            )
            s.flush()
            s.add(Tip(channel=TipChannel.sms, received_at=utcnow(), action_id=action.id, sms_text="zag hem"))
            if i == 1:
                keys["centralist"] = auth.create_user(
                    s, SETTINGS.secret_key, "fuzz-centralist", Role.centralist, centralist_id=c.id
                )[1]
                keys["municipality"] = auth.create_user(
                    s, SETTINGS.secret_key, "fuzz-municipality", Role.municipality, municipality_id=m.id
                )[1]
        s.commit()
    return keys


@pytest.fixture(scope="module")
def world(request):
    """The app on a fresh PostgreSQL database of its own, seeded; (client, keys)."""
    url = _pg_create()
    engine = None
    try:
        upgrade(url)
        engine = make_engine(url)
        sessions = session_factory(engine)
        app = create_app(SETTINGS, sessions=sessions, queue=MemoryQueue(), housekeeping_jobs=False)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client, _seed(sessions)
    finally:
        if engine is not None:
            engine.dispose()
        _pg_drop(url)
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:  # at the end of the run, where output is no longer captured
            request.config.add_cleanup(
                lambda: reporter.write_line(
                    f"fuzz (test_fuzz.py): {TALLY['requests']} requests, {TALLY['5xx']} with a 5xx"
                )
            )


ROUTES = sorted(
    {
        (m, p): r
        for m, p, r in _api_routes(create_app(SETTINGS, queue=MemoryQueue(), housekeeping_jobs=False))
        if m != "HEAD"
    }.items(),
    key=lambda item: item[0][1:] + item[0][:1],
)


def _query_params(route) -> dict:
    """The route's query parameters (its dependencies' — the statistics filters — included), each
    with values aimed at its type: dates at the calendar's edges, integers at their limits."""
    params, pending = {}, [route.dependant]
    while pending:
        dependant = pending.pop()
        params.update({p.alias: _aimed_at(p.field_info.annotation) for p in dependant.query_params})
        pending += dependant.dependencies
    return params


def _aimed_at(annotation) -> st.SearchStrategy[str]:
    kind = repr(annotation)
    if "date" in kind:
        return st.one_of(st.sampled_from(EDGE_DATES), st.sampled_from(EDGE_DATES), url_text)
    if "int" in kind:
        return st.one_of(st.sampled_from(EDGE_INTS).map(str), url_text)
    return url_text


def _request(method: str, path: str, route, keys: dict[str, str]) -> st.SearchStrategy[dict]:
    """Everything about one request: who, which path values, which query, which body."""
    ids = st.one_of(st.sampled_from(EDGE_INTS).map(str), url_text)
    concrete = st.fixed_dictionaries(dict.fromkeys(re.findall(r"\{([^}]+)\}", path), ids)).map(
        lambda values: re.sub(r"\{([^}]+)\}", lambda m: quote(values[m.group(1)], safe=""), path)
    )
    query = st.fixed_dictionaries({}, optional=_query_params(route))
    who = st.sampled_from(sorted(keys) + ["nobody"])
    valid = _request_kwargs(route)
    if path.endswith("/import-cap"):
        body = _cap().map(lambda doc: {"content": doc, "headers": {"Content-Type": "application/xml"}})
    elif "files" in valid:
        body = _csv().map(lambda doc: {"files": {"file": ("p.csv", doc, "text/csv")}})
    elif "json" in valid:
        body = _json_body(valid["json"]).map(
            lambda doc: {"content": doc, "headers": {"Content-Type": "application/json"}}
        )
    else:
        body = st.just({})
    return st.fixed_dictionaries({"path": concrete, "params": query, "who": who, "body": body})


def _send(client: TestClient, method: str, request: dict, keys: dict[str, str]) -> int:
    body = dict(request["body"])
    headers = {**body.pop("headers", {}), "X-Burgernet-Request": "1"}
    if request["who"] in keys:
        headers["Authorization"] = f"Bearer {keys[request['who']]}"
    # Server-sent events never end: look at the status, then hang up.
    with client.stream(method, request["path"], params=request["params"], headers=headers, **body) as r:
        return r.status_code


@pytest.mark.parametrize("method, path", [key for key, _ in ROUTES], ids=[f"{m} {p}" for (m, p), _ in ROUTES])
@settings(
    max_examples=EXAMPLES_PER_ROUTE,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_no_route_answers_5xx_to_extreme_values(world, method, path, data):
    client, keys = world
    route = dict(ROUTES)[(method, path)]
    request = data.draw(_request(method, path, route, keys))
    status = _send(client, method, request, keys)
    TALLY["requests"] += 1
    if status >= 500:
        TALLY["5xx"] += 1
    assert status < 500, f"{method} {request['path']} as {request['who']}: {status} ({request['params']})"
