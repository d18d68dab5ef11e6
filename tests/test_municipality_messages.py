"""A municipality's own messages: inside its boundary only, routine urgency, no tip line unless
asked, each recipient waiting for her receive window, apart from police actions in statistics."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from gateway.actions import lifecycle, messages
from gateway.storage.models import Address, Bulletin, Message, Participant, WaitingRecipient
from gateway.targeting.geo import tile_of
from gateway.targeting.select import LOCAL_TZ

# Utrecht's territory, simplified to a quadrilateral round the city.
UTRECHT_BOUNDARY = [[52.03, 5.02], [52.14, 5.02], [52.14, 5.20], [52.03, 5.20]]
CENTRE = (52.0907, 5.1214)
MESSAGES = "/api/v1/messages"


def _boundary(api):
    api.call(
        "admin",
        "PUT",
        f"/api/v1/municipalities/{api.utrecht.id}/boundary",
        json={"polygon": UTRECHT_BOUNDARY},
    )


def _register(api, phone: str, windows: str | None = None, unsubscribed: bool = False) -> None:
    with api.sessions() as s:
        p = Participant(
            municipality_id=api.utrecht.id,
            name="P",
            phone=phone,
            unsubscribed_at=datetime.now(UTC) if unsubscribed else None,
        )
        p.addresses = [
            Address(
                postcode="3511 AB",
                house_number="1",
                lat=CENTRE[0],
                lon=CENTRE[1],
                tile=tile_of(*CENTRE),
                channel="sms",
                windows=windows,
            )
        ]
        s.add(p)
        s.commit()


def _later_window(hours: int = 3) -> str:
    """An every-day window that opens `hours` from now (local time) and lasts an hour."""
    start = datetime.now(LOCAL_TZ) + timedelta(hours=hours)
    end = start + timedelta(hours=1)
    return f"{start:%H}:00-{end:%H}:00"


def _draft(api, who="utrecht", expect=201, **extra):
    """A draft message round the centre (1 km), as Utrecht writes it."""
    body = {
        "description": "Let op: er wordt veel ingebroken in de wijk. Sluit ramen en deuren.",
        "lat": CENTRE[0],
        "lon": CENTRE[1],
        "radius_m": 1000,
        **extra,
    }
    return api.call(who, "POST", MESSAGES, expect=expect, json=body)


def test_a_municipality_sends_a_message_that_waits_for_each_window(api):
    _boundary(api)
    _register(api, "+31610000001")  # always
    _register(api, "+31610000002", windows=_later_window())  # only in three hours
    _register(api, "+31610000003", unsubscribed=True)
    draft = _draft(api, channels=["sms"])
    assert (draft["urgency"], draft["centralist_id"], draft["municipality_id"], draft["tip_line"]) == (
        "routine",
        None,
        api.utrecht.id,
        False,
    )
    preview = api.call("utrecht", "GET", f"{MESSAGES}/{draft['id']}/preview")
    assert (preview["total"], preview["waiting"]) == (2, 1)
    assert preview["sms"]["text"].startswith("Burgernet, gemeente Utrecht: Let op")
    assert "0800" not in preview["sms"]["text"] and "actiecode" not in preview["sms"]["text"]
    assert "terug" not in preview["spoken_text"]

    sent = api.call("utrecht", "POST", f"{MESSAGES}/{draft['id']}/send")
    assert (sent["status"], sent["waiting"]) == ("open", 1)
    with api.sessions() as s:
        assert s.scalars(select(Message.phone)).all() == ["+31610000001"]
        alert = s.scalars(select(Bulletin)).one()
        assert alert.fanned_out_at is None  # someone still waits
        # The repair of interrupted launches leaves a waiting message alone.
        future = datetime.now(UTC) + timedelta(hours=1)
        assert all(q.count == 0 for q in lifecycle.complete_fan_outs(s, future, future))
        s.commit()
        assert s.scalars(select(Message.phone)).all() == ["+31610000001"]
        # Not before her window: nothing released.
        assert messages.release_due(s, datetime.now(UTC) + timedelta(hours=2)) == []
        [queued] = messages.release_due(s, datetime.now(UTC) + timedelta(hours=3, minutes=1))
        assert queued.count == 1
        s.commit()
        assert sorted(s.scalars(select(Message.phone))) == ["+31610000001", "+31610000002"]
        assert s.get(Bulletin, alert.id).fanned_out_at is not None
        assert not s.scalars(select(WaitingRecipient)).all()
    listed = api.call("utrecht", "GET", MESSAGES)
    assert [m["id"] for m in listed] == [draft["id"]] and listed[0]["waiting"] == 0


def test_a_message_is_refused_outside_the_municipality(api):
    _boundary(api)
    r = api.client.post(
        MESSAGES,
        json={"description": "x", "lat": 52.2, "lon": 5.4, "radius_m": 1000},  # Amersfoort
        headers=api.as_("utrecht"),
    )
    assert r.status_code == 403 and "reaches outside Utrecht" in r.json()["message"]
    # A circle round the centre that crosses the boundary, and a polygon that pokes out.
    r = api.client.post(
        MESSAGES,
        json={"description": "x", "lat": 52.09, "lon": 5.12, "radius_m": 8000},
        headers=api.as_("utrecht"),
    )
    assert r.status_code == 403, r.text
    poke = [[52.05, 5.05], [52.10, 5.05], [52.10, 5.25], [52.05, 5.10]]
    r = api.client.post(MESSAGES, json={"description": "x", "polygon": poke}, headers=api.as_("utrecht"))
    assert r.status_code == 403, r.text
    inside = [[52.05, 5.05], [52.10, 5.05], [52.10, 5.15]]
    api.call("utrecht", "POST", MESSAGES, expect=201, json={"description": "x", "polygon": inside})
    # Zeist has no boundary on file: told so.
    r = api.client.post(
        MESSAGES,
        json={"description": "x", "lat": 52.09, "lon": 5.25, "radius_m": 500},
        headers=api.as_("zeist"),
    )
    assert r.status_code == 403 and "no boundary on file for Zeist" in r.json()["message"]
    # Bad input: 422.
    r = api.client.post(MESSAGES, json={"description": "x", "lat": 52.09}, headers=api.as_("utrecht"))
    assert r.status_code == 422 and "missing lon, radius_m" in r.text


def test_only_its_own_municipality_sees_and_sends_it(api):
    _boundary(api)
    draft = _draft(api)
    for method, path in [
        ("GET", f"{MESSAGES}/{draft['id']}/preview"),
        ("POST", f"{MESSAGES}/{draft['id']}/send"),
    ]:
        r = api.client.request(method, path, headers=api.as_("zeist"))
        assert r.status_code == 403 and "another municipality" in r.text, r.text
    assert api.call("zeist", "GET", MESSAGES) == []
    # A centralist cannot launch it as a police action either.
    r = api.client.post(f"/api/v1/actions/{draft['id']}/launch", headers=api.as_("centralist"))
    assert r.status_code == 403


def test_asked_for_tips_it_carries_the_tip_line_and_a_code(api):
    _boundary(api)
    _register(api, "+31610000001")
    draft = _draft(api, tip_line=True)
    preview = api.call("utrecht", "GET", f"{MESSAGES}/{draft['id']}/preview")
    assert "Bel gratis 0800-0011, actiecode ####." in preview["sms"]["text"]
    sent = api.call("utrecht", "POST", f"{MESSAGES}/{draft['id']}/send")
    assert sent["action_code"] and len(sent["action_code"]) == 4
    with api.sessions() as s:
        assert f"actiecode {sent['action_code']}" in s.scalars(select(Bulletin.sms_text)).one()


def test_stopping_it_drops_the_waiting_and_sends_no_closing(api):
    _boundary(api)
    _register(api, "+31610000001")
    _register(api, "+31610000002", windows=_later_window())
    draft = _draft(api)
    api.call("utrecht", "POST", f"{MESSAGES}/{draft['id']}/send")
    closed = api.call("utrecht", "POST", f"{MESSAGES}/{draft['id']}/close")
    assert (closed["status"], closed["waiting"]) == ("closed", 0)
    with api.sessions() as s:
        assert [b.kind.value for b in s.scalars(select(Bulletin))] == ["alert"]
        assert messages.release_due(s, datetime.now(UTC) + timedelta(days=1)) == []


def test_statistics_count_police_actions_apart(api):
    _boundary(api)
    _register(api, "+31610000001")
    draft = _draft(api)
    api.call("utrecht", "POST", f"{MESSAGES}/{draft['id']}/send")
    police = api.launch()
    summary = api.call("utrecht", "GET", "/api/v1/stats/summary", params={"municipality": "GM0344"})
    assert summary["actions"] == 1  # the police action; the message is listed apart
    area = api.call("utrecht", "GET", "/api/v1/area/actions")
    assert [a["id"] for a in area] == [police["id"]]
    assert [m["id"] for m in api.call("utrecht", "GET", MESSAGES)] == [draft["id"]]
