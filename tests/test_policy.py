"""The ownership and privacy rules of gateway/policy.py, through the API (issue 17, defects 5 and 6).

5: a centralist changes only her own actions — closing another's was possible although setting
   its outcome afterwards was not. 6: a municipality got another municipality's figures through
   `?region=` (a one-municipality region, or a two-municipality region minus her own figures).
"""

from sqlalchemy import select

from gateway import auth
from gateway.storage.models import (
    Action,
    ActionStatus,
    Address,
    Centralist,
    Channel,
    Municipality,
    Participant,
    Role,
)
from gateway.targeting.geo import tile_of

ACTION = {"type": "burglary", "description": "Man in rode jas", "lat": 52.09, "lon": 5.12, "radius_m": 1000}


def _other_centralist(api) -> str:
    with api.sessions() as s:
        other = Centralist(name="O. Ther", meldkamer="Oost", dial_string="PJSIP/5000@mk")
        s.add(other)
        s.flush()
        api.keys["other"] = auth.create_user(
            s, api.settings.secret_key, "other", Role.centralist, centralist_id=other.id
        )[1]
        s.commit()
    return "other"


def _status(api, action_id: int) -> ActionStatus:
    with api.sessions() as s:
        return s.scalar(select(Action.status).where(Action.id == action_id))


# --- 5: actions belong to their centralist ------------------------------------------------------------


def test_only_the_owner_or_an_admin_changes_an_action(api):
    other = _other_centralist(api)
    draft = api.call("centralist", "POST", "/api/v1/actions", expect=201, json=ACTION)
    base = f"/api/v1/actions/{draft['id']}"
    for method, suffix, body in [
        ("PATCH", "", {"description": "Man in blauwe jas"}),
        ("POST", "/launch", None),
    ]:
        r = api.call(other, method, base + suffix, expect=403, json=body)
        assert r["details"]["reason"] == "not-owner"
    assert _status(api, draft["id"]) == ActionStatus.draft

    opened = api.launch()
    base = f"/api/v1/actions/{opened['id']}"
    api.call(other, "POST", base + "/updates", expect=403, json={"text": "Hij draagt een pet"})
    api.call(
        other, "POST", base + "/close", expect=403, json={"outcome": "direct", "outcome_detail": "arrest"}
    )
    assert _status(api, opened["id"]) == ActionStatus.open  # nothing changed, no closing message queued
    # The same rule as for the outcome afterwards: the owner, or an admin.
    api.call("admin", "POST", base + "/updates", expect=201, json={"text": "Hij draagt een pet"})
    api.call("centralist", "POST", base + "/close", json={"outcome": "none"})
    api.call(
        other, "POST", base + "/outcome", expect=403, json={"outcome": "direct", "outcome_detail": "arrest"}
    )
    assert (
        api.call(
            "centralist", "POST", base + "/outcome", json={"outcome": "direct", "outcome_detail": "arrest"}
        )["outcome"]
        == "direct"
    )
    # Another's action is still readable: centralists follow each other's actions.
    assert api.call(other, "GET", base)["id"] == opened["id"]
    api.call(other, "POST", "/api/v1/actions/999999/close", expect=404, json={"outcome": "none"})


# --- 6: figures never reveal another municipality ---------------------------------------------------------


def _participant(municipality_id: int) -> Participant:
    address = Address(
        postcode="3511 AB",
        house_number="1",
        lat=52.09,
        lon=5.12,
        tile=tile_of(52.09, 5.12),
        channel=Channel.sms,
    )
    return Participant(
        municipality_id=municipality_id, name="P", phone=f"+316{municipality_id:08d}", addresses=[address]
    )


def _municipalities(api, region: str, *codes: str, participants: bool = True) -> None:
    """Municipalities in `region`, each with one participant (or none)."""
    with api.sessions() as s:
        for code in codes:
            m = Municipality(cbs_code=code, name=f"Gemeente {code}", region=region)
            s.add(m)
            s.flush()
            if participants:
                s.add(_participant(m.id))
        s.commit()


def _stats(api, who: str, path: str = "summary", **params):
    return api.client.get(f"/api/v1/stats/{path}", params=params, headers=api.as_(who))


def _with_participants(api, *names: str) -> None:
    ids = {"utrecht": api.utrecht.id, "zeist": api.zeist.id}
    with api.sessions() as s:
        for name in names:
            s.add(_participant(ids[name]))
        s.commit()


def test_a_municipality_gets_no_figures_of_another_region(api):
    _with_participants(api, "utrecht", "zeist")
    _municipalities(api, "Eenling", "GM0184")  # a region of one municipality: its figures are Urk's
    _municipalities(api, "Noord", "GM0014", "GM0034", "GM0037")
    for path in ("summary", "signups", "by-type", "by-municipality"):
        for region in ("Eenling", "Noord"):
            r = _stats(api, "utrecht", path, region=region)
            assert r.status_code == 403 and "own region" in r.json()["message"], (path, region, r.text)
    assert _stats(api, "centralist", region="Eenling").status_code == 200  # the police see all


def test_a_region_of_two_is_not_shown_since_subtraction_would_reveal_the_other(api):
    _with_participants(api, "utrecht", "zeist")
    _municipalities(api, "Noord", "GM0014", "GM0034")
    for path in ("summary", "signups", "by-type"):
        r = _stats(api, "utrecht", path, region="Midden-Nederland")
        assert r.status_code == 403 and r.json()["details"]["reason"] == "group-too-small", (path, r.text)
    averages = _stats(api, "utrecht", "by-municipality").json()
    assert [row["cbs_code"] for row in averages["rows"]] == ["GM0344"] and averages["region_average"] is None
    # The country minus Utrecht: Zeist and two in Noord — a group, so the national figures are shown.
    assert averages["national_average"] is not None
    assert _stats(api, "utrecht").status_code == 200


def test_a_municipality_without_participants_does_not_make_a_group(api):
    _with_participants(api, "utrecht", "zeist")
    _municipalities(api, "Midden-Nederland", "GM0307", participants=False)  # counts for nothing
    assert _stats(api, "utrecht", region="Midden-Nederland").json()["details"]["reason"] == "group-too-small"
    _municipalities(api, "Midden-Nederland", "GM0310")
    assert _stats(api, "utrecht", region="Midden-Nederland").status_code == 200


def test_national_figures_need_a_group_beyond_the_region_she_sees(api):
    _with_participants(api, "utrecht", "zeist")
    _municipalities(api, "Midden-Nederland", "GM0307")
    _municipalities(api, "Eenling", "GM0184")
    # Her region is shown (Zeist, Amersfoort); the country minus it would be Urk alone.
    assert _stats(api, "utrecht", region="Midden-Nederland").status_code == 200
    r = _stats(api, "utrecht")
    assert r.status_code == 403 and r.json()["details"]["reason"] == "group-too-small"
    averages = _stats(api, "utrecht", "by-municipality").json()
    assert averages["region_average"] is not None and averages["national_average"] is None
    _municipalities(api, "Noord", "GM0014")
    assert _stats(api, "utrecht").status_code == 200
    assert _stats(api, "utrecht", municipality="GM0344").status_code == 200  # her own, always
