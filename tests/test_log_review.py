"""Log review (issue 17, defect 7): a representative run of the API — every kind of route, with
phone numbers in bodies, paths, query strings, search terms, CSV files and errors — and then every
log record it produced is searched for a full phone number. Names searched for must not appear.

The records are taken at the root logger at DEBUG, so whatever any module logs is reviewed,
the access log (gateway.api.accesslog) included — all but the test client's own (httpx).
"""

import logging
import re

import pytest
from fastapi.testclient import TestClient

from gateway.phone import mask_numbers

# Full numbers as they could leak: E.164 (+31…, +32…, +49…), 0031…, Dutch 06… / 030…, with or
# without separators.
FULL_NUMBER = re.compile(r"(?:\+|00)[1-9][0-9]{7,14}|(?<![0-9])0[1-9][0-9]{8}(?![0-9])")
PHONES = ["+31612345678", "0687654321", "+32470123456", "+4915123456789", "0031611122233"]
SEARCHED_NAME = "Wilhelmina Zoekmans"


class Everything(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record):
        if record.name.startswith("httpx"):
            return  # the test's own HTTP client (TestClient) logging the URLs it calls — not the gateway
        self.lines.append(self.format(record))  # the message, and a traceback if any


@pytest.fixture
def review():
    handler, root = Everything(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def _participant(phone: str, name: str = "Jan Jansen") -> dict:
    return {
        "name": name,
        "phone": phone,
        "addresses": [{"postcode": "3511 AB", "house_number": "12", "lat": 52.0907, "lon": 5.1214}],
    }


def _story(api) -> None:
    """What a day of municipalities, centralists and an admin looks like, with odd input too."""
    client = TestClient(api.client.app, raise_server_exceptions=False)
    utrecht = api.as_("utrecht")
    ids = [
        api.call("utrecht", "POST", "/api/v1/participants", expect=201, json=_participant(p))["id"]
        for p in PHONES[:3]
    ]
    api.call(
        "utrecht", "POST", "/api/v1/participants", expect=201, json=_participant(PHONES[3], SEARCHED_NAME)
    )
    for q in (PHONES[0], PHONES[1], "+316 1234 5678", SEARCHED_NAME, "5678"):
        client.get("/api/v1/participants", params={"q": q}, headers=utrecht)
    client.get(f"/api/v1/participants/{ids[0]}", headers=utrecht)
    client.put(f"/api/v1/participants/{ids[0]}", json=_participant(PHONES[4]), headers=utrecht)
    client.post("/api/v1/participants", json=_participant("+31 6 123"), headers=utrecht)  # invalid number
    client.post("/api/v1/participants", json=_participant(PHONES[0]), headers=utrecht)  # again: a conflict?
    csv = (
        "name,phone,postcode,house_number,lat,lon\n"
        + "".join(f"{SEARCHED_NAME},{p},3511 AB,1,52.09,5.12\n" for p in PHONES)
        + "Bad,+31 6 1,3511 AB,1,52.09,5.12\n"
    )
    client.post(
        "/api/v1/participants/import", files={"file": ("p.csv", csv.encode(), "text/csv")}, headers=utrecht
    )
    client.get(
        f"/api/v1/participants/by-phone/{PHONES[0]}", headers=utrecht
    )  # no such route: a 404 with the number
    client.get(
        "/api/v1/stats/summary", params={"municipality": "GM0344", "region": PHONES[1]}, headers=utrecht
    )
    action = api.launch()
    client.get(f"/api/v1/actions/{action['id']}/tips", headers=api.as_("centralist"))
    client.post(
        f"/api/v1/actions/{action['id']}/close", json={"outcome": "none"}, headers=api.as_("centralist")
    )
    client.post("/auth/login", json={"api_key": PHONES[0]}, headers={"X-Burgernet-Request": "1"})
    client.get("/api/v1/me", headers={"Authorization": f"Bearer {PHONES[2]}"})
    client.delete(f"/api/v1/participants/{ids[1]}", headers=utrecht)

    def broken():
        raise ValueError(
            f"the database refused the row for {PHONES[0]} ({SEARCHED_NAME!r} stays out of messages)"
        )

    api.client.app.add_api_route("/api/v1/broken-for-review", broken)
    assert client.get("/api/v1/broken-for-review", headers=utrecht).status_code == 500


def test_no_log_record_holds_a_full_phone_number_or_a_search_term(api, review):
    _story(api)
    access = [line for line in review.lines if line.startswith("gateway.access ")]
    assert len(access) >= 20, review.lines  # the review saw the run (an empty capture proves nothing)
    assert any("participants?q=-" in line for line in access)
    assert any("failed:" in line and "Traceback" in line for line in review.lines)  # the 500 was logged
    leaks = [line for line in review.lines if FULL_NUMBER.search(line)]
    assert not leaks, "\n".join(leaks)
    searched = [line for line in review.lines if "Zoekmans" in line and "broken-for-review" not in line]
    assert not searched, "\n".join(searched)


def test_the_review_would_see_a_leak():
    """The pattern finds every number of the story as it would be written unmasked."""
    for phone in PHONES:
        assert FULL_NUMBER.search(f"GET /api/v1/participants?q={phone} 200")
        assert not FULL_NUMBER.search(mask_numbers(f"GET /api/v1/participants?q={phone} 200"))
