"""Participants as a municipality manages them, on PostgreSQL and SQLite."""

from datetime import UTC, datetime

from gateway.participants import unsubscribe_number

JAN = {
    "name": "Jan Jansen",
    "phone": "06 1234 5678",
    "language": "nl",
    "pause_from": "2026-07-01",
    "pause_until": "2026-07-21",
    "addresses": [
        {
            "postcode": "3511ab",
            "house_number": "12",
            "lat": 52.0907,
            "lon": 5.1214,
            "channel": "sms",
            "window_start": "22:00",
            "window_end": "07:00",
        },
        {
            "country": "BE",
            "postcode": "2300",
            "house_number": "3A",
            "lat": 51.3227,
            "lon": 4.9447,
            "channel": "voice",
        },
    ],
}


def test_register_read_change_unsubscribe_delete(api):
    created = api.call("utrecht", "POST", "/api/v1/participants", expect=201, json=JAN)
    assert created["phone"] == "+31612345678"  # stored as E.164
    assert created["municipality_id"] == api.utrecht.id
    home, abroad = created["addresses"]
    every_day = ["mo", "tu", "we", "th", "fr", "sa", "su"]
    assert home["postcode"] == "3511 AB"
    assert home["windows"] == [{"days": every_day, "start": "22:00", "end": "07:00"}]  # the short form
    assert abroad["country"] == "BE" and abroad["windows"] == []

    pid = created["id"]
    assert api.call("utrecht", "GET", f"/api/v1/participants/{pid}") == created
    assert [p["id"] for p in api.call("utrecht", "GET", "/api/v1/participants", params={"q": "5678"})] == [
        pid
    ]
    assert [p["id"] for p in api.call("utrecht", "GET", "/api/v1/participants", params={"q": "jansen"})] == [
        pid
    ]

    changed = api.call(
        "utrecht", "PUT", f"/api/v1/participants/{pid}", json={**JAN, "addresses": JAN["addresses"][:1]}
    )
    assert len(changed["addresses"]) == 1

    gone = api.call("utrecht", "POST", f"/api/v1/participants/{pid}/unsubscribe")
    assert gone["unsubscribed_at"] is not None

    api.call("utrecht", "DELETE", f"/api/v1/participants/{pid}", expect=204)
    api.call("utrecht", "GET", f"/api/v1/participants/{pid}", expect=404)


def test_admin_registers_for_a_named_municipality(api):
    api.call("admin", "POST", "/api/v1/participants", expect=422, json=JAN)  # which municipality?
    created = api.call(
        "admin", "POST", "/api/v1/participants", expect=201, json={**JAN, "municipality_id": api.zeist.id}
    )
    assert created["municipality_id"] == api.zeist.id
    assert [
        p["id"]
        for p in api.call("admin", "GET", "/api/v1/participants", params={"municipality_id": api.zeist.id})
    ] == [created["id"]]
    assert api.call("admin", "GET", "/api/v1/participants", params={"municipality_id": api.utrecht.id}) == []


def test_unsubscribing_a_number_ends_every_registration_of_it(api):
    a = api.call("utrecht", "POST", "/api/v1/participants", expect=201, json=JAN)
    b = api.call(
        "zeist", "POST", "/api/v1/participants", expect=201, json={**JAN, "name": "Jan op zijn werk"}
    )
    other = api.call("zeist", "POST", "/api/v1/participants", expect=201, json={**JAN, "phone": "0687654321"})
    with api.sessions() as s:
        assert unsubscribe_number(s, "+31612345678", datetime.now(UTC)) == 2
        s.commit()
    assert api.call("utrecht", "GET", f"/api/v1/participants/{a['id']}")["unsubscribed_at"]
    assert api.call("zeist", "GET", f"/api/v1/participants/{b['id']}")["unsubscribed_at"]
    assert api.call("zeist", "GET", f"/api/v1/participants/{other['id']}")["unsubscribed_at"] is None
