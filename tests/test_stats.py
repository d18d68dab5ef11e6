"""Success counting on a fixed data set, with the expected figures worked out by hand.

The data set (January 2026; every time UTC):

  action  type            launched             closed               outcome     alert to (status)                      tips (received)
  A1      missing_person  01-05 10:00          01-05 10:40          direct      u1 sms delivered, u2 sms failed,       10:10, 10:20 counted;
                                                                                u3 voice answered, u4 sms cancelled,   11:00 after the close
                                                                                z1 sms delivered
                                                                                closing: u1 sms delivered, u3 voice answered, z1 sms submitted
  A2      robbery         01-10 09:00          01-10 09:30          indirect    u4 sms delivered, z2 voice failed      09:45, after the close
                                                                                closing: u4 sms delivered
  A3      burglary        01-15 08:00          01-15 08:30          none        (nobody: no recipients)                -
  A4      robbery         01-20 12:00          01-20 14:00 expired  (none)      a1 sms delivered, u1 sms delivered     14:00 exactly at the close
                                                                                closing: a1 sms delivered, u1 sms queued
  A5      robbery         01-31 23:59:59       (open)               -           u2 sms queued, z1 voice sending        02-01 00:10
  A6      robbery         02-01 00:00          02-01 01:00          direct      u1 sms delivered                       00:30
  A7      robbery         2025-12-31 23:59:59  2026-01-01 00:30     direct      u1 sms delivered                       -
  A8      other           draft, never launched

u1–u4 are Utrecht's participants, z1–z2 Zeist's (both Midden-Nederland), a1 Amsterdam's.
"""

from datetime import UTC, datetime

import pytest

from gateway import auth
from gateway.stats import rollup
from gateway.storage.models import (
    Action,
    ActionStatus,
    ActionType,
    Bulletin,
    BulletinKind,
    Centralist,
    Message,
    Municipality,
    Outcome,
    Participant,
    Role,
    Tip,
    TipChannel,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


PHONES = {
    "u1": "+31610000001",
    "u2": "+31610000002",
    "u3": "+31610000003",
    "u4": "+31610000004",
    "z1": "+31620000001",
    "z2": "+31620000002",
    "a1": "+31630000001",
}
CREATED = {
    "u1": "2025-06-01 12:00",
    "u2": "2026-01-03 12:00",
    "u3": "2026-01-20 12:00",
    "u4": "2026-02-02 12:00",
    "z1": "2025-12-31 23:00",
    "z2": "2026-01-01 00:00",
    "a1": "2026-01-31 23:59",
}
UNSUBSCRIBED = {"u1": "2026-01-25 08:00"}

ACTIONS = [
    # name, type, launched, closed, outcome, expired, alert, closing, tips
    (
        "A1",
        "missing_person",
        "2026-01-05 10:00",
        "2026-01-05 10:40",
        "direct",
        False,
        [
            ("u1", "sms", "delivered"),
            ("u2", "sms", "failed"),
            ("u3", "voice", "answered"),
            ("u4", "sms", "cancelled"),
            ("z1", "sms", "delivered"),
        ],
        [("u1", "sms", "delivered"), ("u3", "voice", "answered"), ("z1", "sms", "submitted")],
        ["2026-01-05 10:10", "2026-01-05 10:20", "2026-01-05 11:00"],
    ),
    (
        "A2",
        "robbery",
        "2026-01-10 09:00",
        "2026-01-10 09:30",
        "indirect",
        False,
        [("u4", "sms", "delivered"), ("z2", "voice", "failed")],
        [("u4", "sms", "delivered")],
        ["2026-01-10 09:45"],
    ),
    ("A3", "burglary", "2026-01-15 08:00", "2026-01-15 08:30", "none", False, [], [], []),
    (
        "A4",
        "robbery",
        "2026-01-20 12:00",
        "2026-01-20 14:00",
        None,
        True,
        [("a1", "sms", "delivered"), ("u1", "sms", "delivered")],
        [("a1", "sms", "delivered"), ("u1", "sms", "queued")],
        ["2026-01-20 14:00"],
    ),
    (
        "A5",
        "robbery",
        "2026-01-31 23:59:59",
        None,
        None,
        False,
        [("u2", "sms", "queued"), ("z1", "voice", "sending")],
        [],
        ["2026-02-01 00:10"],
    ),
    (
        "A6",
        "robbery",
        "2026-02-01 00:00",
        "2026-02-01 01:00",
        "direct",
        False,
        [("u1", "sms", "delivered")],
        [],
        ["2026-02-01 00:30"],
    ),
    (
        "A7",
        "robbery",
        "2025-12-31 23:59:59",
        "2026-01-01 00:30",
        "direct",
        False,
        [("u1", "sms", "delivered")],
        [],
        [],
    ),
]


@pytest.fixture
def world(api):
    """The API plus the fixed data set; returns (api, action ids by name)."""
    with api.sessions() as s:
        amsterdam = Municipality(cbs_code="GM0363", name="Amsterdam", region="Amsterdam")
        s.add(amsterdam)
        s.flush()
        home = {"u": api.utrecht.id, "z": api.zeist.id, "a": amsterdam.id}
        people = {}
        for name, phone in PHONES.items():
            p = Participant(
                municipality_id=home[name[0]],
                name=name,
                phone=phone,
                created_at=at(CREATED[name]),
                unsubscribed_at=at(UNSUBSCRIBED[name]) if name in UNSUBSCRIBED else None,
            )
            s.add(p)
            people[name] = p
        s.flush()
        ids = {}
        for name, type_, launched, closed, outcome, expired, alert, closing, tips in ACTIONS:
            action = Action(
                type=ActionType(type_),
                description=name,
                lat=52.09,
                lon=5.12,
                radius_m=1000,
                centralist_id=api.centralist.id,
                action_code=name[1:].zfill(4),
                status=ActionStatus.closed if closed else ActionStatus.open,
                created_at=at(launched),
                launched_at=at(launched),
                closed_at=at(closed) if closed else None,
                expired=expired,
                outcome=Outcome(outcome) if outcome else None,
            )
            s.add(action)
            s.flush()
            ids[name] = action.id
            for kind, messages in ((BulletinKind.alert, alert), (BulletinKind.closing, closing)):
                if not messages:
                    continue
                bulletin = Bulletin(action_id=action.id, kind=kind, seq=0, sms_text=name, spoken_text=name)
                s.add(bulletin)
                s.flush()
                for who, channel, status in messages:
                    s.add(
                        Message(
                            bulletin_id=bulletin.id,
                            action_id=action.id,
                            phone=PHONES[who],
                            participant_id=people[who].id,
                            channel=channel,
                            status=status,
                        )
                    )
            for received in tips:
                s.add(Tip(channel=TipChannel.call, received_at=at(received), action_id=action.id))
        draft = Action(
            type=ActionType.other,
            description="A8",
            lat=52.09,
            lon=5.12,
            radius_m=1000,
            centralist_id=api.centralist.id,
            created_at=at("2026-01-12 12:00"),
        )
        s.add(draft)
        s.commit()
    return api, ids


def stats(api, path, who="centralist", **params):
    return api.call(who, "GET", f"/api/v1/stats/{path}", params=params)


JANUARY = {"from": "2026-01-01", "to": "2026-01-31"}


def check_january(api):
    national = stats(api, "summary", **JANUARY)
    assert national == {
        "filters": {
            "from": "2026-01-01",
            "to": "2026-01-31",
            "municipality": None,
            "region": None,
            "action_type": None,
        },
        "actions": 5,  # A1–A5: A7 is before the period, A6 after it, A8 never launched
        "closed_actions": 4,  # A5 is still open
        "expired_without_outcome": 1,  # A4
        "recipients": {"sms": 8, "voice": 3},  # alert messages: A1 4+1, A2 1+1, A3 0, A4 2+0, A5 1+1
        "messages": {
            "submitted": 1,
            "delivered": 8,
            "answered": 2,
            "failed": 2,
            "cancelled": 1,
            "pending": 3,
        },
        "delivery_rate": 8 / 10,  # SMS delivered / (submitted + delivered + failed)
        "answer_rate": 2 / 3,  # calls answered / (answered + failed)
        "actions_with_tip": 3,  # A1, A4 (tip exactly at the close), A5; A2's only tip came after the close
        "tips": 4,  # A1 2 (its 11:00 tip is after the close), A4 1, A5 1 (received in February: counts for A5)
        "direct_success": 1,
        "indirect_success": 1,
        "actions_with_tip_share": 3 / 5,
        "direct_success_rate": 1 / 4,  # A1 of the closed A1–A4 (A3 with no recipients, A4 expired, count)
        "indirect_success_rate": 1 / 4,  # A2
    }

    utrecht = stats(api, "summary", municipality="GM0344", **JANUARY)
    assert utrecht["actions"] == 4  # A1, A2, A4, A5 reached Utrecht; A3 reached nobody
    assert utrecht["closed_actions"] == 3
    assert utrecht["recipients"] == {"sms": 6, "voice": 1}  # A1 u1 u2 u4 + u3; A2 u4; A4 u1; A5 u2
    assert utrecht["messages"] == {
        "submitted": 0,
        "delivered": 5,
        "answered": 2,
        "failed": 1,
        "cancelled": 1,
        "pending": 2,
    }
    assert utrecht["delivery_rate"] == 5 / 6
    assert utrecht["answer_rate"] == 1.0
    assert (utrecht["actions_with_tip"], utrecht["tips"]) == (3, 4)
    assert utrecht["actions_with_tip_share"] == 3 / 4
    assert utrecht["direct_success_rate"] == 1 / 3
    assert utrecht["indirect_success_rate"] == 1 / 3

    amsterdam = stats(api, "summary", municipality="GM0363", **JANUARY)
    assert (amsterdam["actions"], amsterdam["closed_actions"], amsterdam["recipients"]) == (
        1,
        1,
        {"sms": 1, "voice": 0},
    )
    assert (
        amsterdam["direct_success_rate"],
        amsterdam["actions_with_tip_share"],
        amsterdam["answer_rate"],
    ) == (0.0, 1.0, None)

    region = stats(api, "summary", region="Midden-Nederland", **JANUARY)
    assert (region["actions"], region["recipients"]) == (4, {"sms": 7, "voice": 3})  # Utrecht's + Zeist's

    robbery = stats(api, "summary", action_type="robbery", **JANUARY)
    assert (robbery["actions"], robbery["closed_actions"], robbery["indirect_success"], robbery["tips"]) == (
        3,
        2,
        1,
        2,
    )

    rows = {r["cbs_code"]: r for r in stats(api, "by-municipality", **JANUARY)["rows"]}
    assert rows["GM0344"] == {
        "cbs_code": "GM0344",
        "name": "Utrecht",
        "region": "Midden-Nederland",
        "actions": 4,
        "recipients": 7,
        "closed_actions": 3,
        "actions_with_tip": 3,
        "direct_success": 1,
        "indirect_success": 1,
        "actions_with_tip_share": 3 / 4,
        "direct_success_rate": 1 / 3,
        "indirect_success_rate": 1 / 3,
    }
    zeist = rows["GM0355"]  # A1 (z1), A2 (z2), A5 (z1)
    assert (zeist["actions"], zeist["recipients"], zeist["closed_actions"]) == (3, 3, 2)
    assert (
        zeist["direct_success_rate"],
        zeist["indirect_success_rate"],
        zeist["actions_with_tip_share"],
    ) == (0.5, 0.5, 2 / 3)
    assert (rows["GM0363"]["actions"], rows["GM0363"]["direct_success_rate"]) == (1, 0.0)

    regional = stats(api, "by-municipality", region="Midden-Nederland", **JANUARY)
    assert [r["cbs_code"] for r in regional["rows"]] == ["GM0344", "GM0355"]
    # Every action that reached the region once: A1, A2, A4, A5.
    assert regional["region_average"] == {
        "actions": 4,
        "closed_actions": 3,
        "actions_with_tip_share": 3 / 4,
        "direct_success_rate": 1 / 3,
        "indirect_success_rate": 1 / 3,
    }
    assert regional["national_average"] == {
        "actions": 5,
        "closed_actions": 4,
        "actions_with_tip_share": 3 / 5,
        "direct_success_rate": 1 / 4,
        "indirect_success_rate": 1 / 4,
    }

    types = {r["action_type"]: r for r in stats(api, "by-type", **JANUARY)["rows"]}
    assert list(types) == ["missing_person", "burglary", "robbery", "hit_and_run", "shop_theft", "other"]
    assert (types["missing_person"]["actions"], types["missing_person"]["direct_success_rate"]) == (1, 1.0)
    assert types["missing_person"]["recipients"] == {"sms": 4, "voice": 1}
    assert (
        types["burglary"]["actions"],
        types["burglary"]["recipients"],
        types["burglary"]["direct_success_rate"],
    ) == (1, {"sms": 0, "voice": 0}, 0.0)
    robbery = types["robbery"]
    assert (robbery["actions"], robbery["closed_actions"], robbery["actions_with_tip"]) == (3, 2, 2)
    assert (robbery["indirect_success_rate"], robbery["recipients"]) == (0.5, {"sms": 4, "voice": 2})
    assert (
        types["other"]["actions"],
        types["other"]["direct_success_rate"],
        types["other"]["delivery_rate"],
    ) == (0, None, None)

    utrecht_types = {
        r["action_type"]: r for r in stats(api, "by-type", municipality="GM0344", **JANUARY)["rows"]
    }
    assert (utrecht_types["robbery"]["actions"], utrecht_types["burglary"]["actions"]) == (3, 0)

    february = stats(api, "summary", **{"from": "2026-02-01", "to": "2026-02-28"})
    assert (february["actions"], february["direct_success_rate"], february["tips"]) == (1, 1.0, 1)  # A6
    december = stats(api, "summary", **{"from": "2025-12-31", "to": "2025-12-31"})
    assert (december["actions"], december["direct_success"]) == (1, 1)  # A7, launched one second before 2026
    empty = stats(api, "summary", **{"from": "2024-01-01", "to": "2024-01-31"})
    assert (
        empty["actions"],
        empty["delivery_rate"],
        empty["direct_success_rate"],
        empty["actions_with_tip_share"],
    ) == (0, None, None, None)


def test_success_figures_equal_the_hand_computed_ones(world):
    api, _ = world
    check_january(api)


def test_the_rollup_gives_the_same_figures(world):
    """Settled actions counted from `action_reach` give exactly what counting their messages gave."""
    api, _ = world
    assert (
        rollup.roll_up_settled(api.sessions, at("2026-03-01 00:00"), settle_hours=24) == 6
    )  # all but open A5
    assert rollup.roll_up_settled(api.sessions, at("2026-03-01 00:00"), settle_hours=24) == 0
    check_january(api)


def test_the_housekeeping_job_rolls_up_what_has_settled(world):
    from gateway import housekeeping

    api, _ = world
    # STATS_SETTLE_HOURS (48 by default) after 2026-01-20 14:00: A1–A4 and A7 have settled, A6 not yet.
    assert housekeeping.roll_up_statistics(api.sessions, api.settings, at("2026-02-02 00:00")) == 5
    assert housekeeping.roll_up_statistics(api.sessions, api.settings, at("2026-02-03 01:00")) == 1  # A6
    check_january(api)


def test_an_action_is_rolled_up_only_once_settled(world):
    api, ids = world
    # A6 closed 2026-02-01 01:00: not settled 47 hours later, settled 48 hours later.
    with api.sessions() as s:
        assert ids["A6"] not in rollup.settled_not_rolled_up(s, at("2026-02-03 00:00"), 48)
        assert ids["A6"] in rollup.settled_not_rolled_up(s, at("2026-02-03 01:00"), 48)


@pytest.mark.parametrize("rebuilt", [None, "2025-12-31 23:30", "2026-01-20 12:00", "2026-03-01 00:00"])
def test_signup_trend(world, rebuilt):
    """The same series counted live, and with the sign-up rollup made at several moments
    (before, inside and after the period: days before that moment's day come from the rollup)."""
    api, _ = world
    if rebuilt is not None:
        with api.sessions() as s:
            rollup.rebuild_signups(s, at(rebuilt))
            s.commit()
    series = stats(api, "signups", **{"from": "2025-12-01", "to": "2026-02-28"})["series"]
    assert series == [
        {"period": "2025-12", "new": 1, "unsubscribed": 0, "total": 2},  # u1 before; z1 on Dec 31
        {"period": "2026-01", "new": 4, "unsubscribed": 1, "total": 5},  # u2 u3 z2 a1; u1 left
        {"period": "2026-02", "new": 1, "unsubscribed": 0, "total": 6},  # u4
    ]
    weeks = stats(api, "signups", municipality="GM0344", bucket="week", **JANUARY)["series"]
    assert weeks == [
        {"period": "2025-12-29", "new": 1, "unsubscribed": 0, "total": 2},  # u1 before; u2 on Sat 3 Jan
        {"period": "2026-01-05", "new": 0, "unsubscribed": 0, "total": 2},
        {"period": "2026-01-12", "new": 0, "unsubscribed": 0, "total": 2},
        {"period": "2026-01-19", "new": 1, "unsubscribed": 1, "total": 2},  # u3 on the 20th, u1 left Sun 25th
        {"period": "2026-01-26", "new": 0, "unsubscribed": 0, "total": 2},
    ]


def test_a_deleted_participant_leaves_the_trend_at_the_next_rebuild(world):
    api, _ = world
    with api.sessions() as s:
        rollup.rebuild_signups(s, at("2026-03-01 00:00"))
        s.commit()
        s.delete(s.query(Participant).filter_by(phone=PHONES["u3"]).one())  # registered 2026-01-20
        s.commit()
    january = {"from": "2026-01-01", "to": "2026-01-31"}
    assert stats(api, "signups", **january)["series"][0]["new"] == 4  # the rollup still has her
    with api.sessions() as s:
        rollup.rebuild_signups(s, at("2026-03-01 00:05"))
        s.commit()
    assert stats(api, "signups", **january)["series"][0]["new"] == 3


def test_a_municipality_sees_its_own_figures_and_the_averages_only(world):
    api, _ = world
    assert stats(api, "summary", "utrecht", municipality="GM0344", **JANUARY)["actions"] == 4
    # Midden-Nederland holds Utrecht and Zeist only: its figures minus Utrecht's would be Zeist's.
    r = api.client.get(
        "/api/v1/stats/summary", params={"region": "Midden-Nederland", **JANUARY}, headers=api.as_("utrecht")
    )
    assert r.status_code == 403 and r.json()["details"]["reason"] == "group-too-small"
    assert (
        stats(api, "summary", "utrecht", **JANUARY)["actions"] == 5
    )  # national: Zeist and Amsterdam besides her
    for path in ("summary", "signups", "by-type", "by-municipality"):
        r = api.client.get(
            f"/api/v1/stats/{path}", params={"municipality": "GM0355"}, headers=api.as_("utrecht")
        )
        assert r.status_code == 403 and r.json()["error_id"] == "forbidden", path
    mine = stats(api, "by-municipality", "utrecht", **JANUARY)
    assert [r["cbs_code"] for r in mine["rows"]] == ["GM0344"]
    assert mine["filters"]["region"] == "Midden-Nederland" and mine["region_average"] is None
    assert mine["national_average"]["actions"] == 5
    assert len(stats(api, "by-municipality", "admin", **JANUARY)["rows"]) == 3
    assert api.client.get("/api/v1/stats/summary").status_code == 401


@pytest.mark.parametrize(
    "params, field",
    [
        ({"municipality": "GM9999"}, "municipality"),
        ({"municipality": "Utrecht"}, "query.municipality"),
        ({"region": "Atlantis"}, "region"),
        ({"from": "2026-02-01", "to": "2026-01-01"}, "from"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "from"),
        ({"from": "yesterday"}, "query.from"),
        ({"action_type": "arson"}, "query.action_type"),
    ],
)
def test_bad_filters_get_a_clear_422(world, params, field):
    api, _ = world
    body = api.call("centralist", "GET", "/api/v1/stats/summary", expect=422, params=params)
    assert body["error_id"] == "invalid"
    fields = [e["field"] for e in body["details"].get("errors", [])] or [body["details"].get("field")]
    assert field in fields


# --- marking ---------------------------------------------------------------------------------


def _tip_ids(api, action_id):
    return [t["id"] for t in api.call("centralist", "GET", f"/api/v1/actions/{action_id}/tips")]


def _other_centralist(api) -> str:
    with api.sessions() as s:
        other = Centralist(name="O. Ther", meldkamer="Amsterdam", dial_string="PJSIP/5000@mk")
        s.add(other)
        s.flush()
        _, key = auth.create_user(
            s, api.settings.secret_key, "other", Role.centralist, centralist_id=other.id
        )
        s.commit()
    api.keys["other"] = key
    return "other"


def test_marking_a_tip(world):
    api, ids = world
    tip = _tip_ids(api, ids["A1"])[-1]
    marked = api.call(
        "centralist", "PATCH", f"/api/v1/tips/{tip}", json={"useful": True, "led_to_success": True}
    )
    assert (marked["useful"], marked["led_to_success"], marked["marked_at"] is not None) == (True, True, True)
    again = api.call("admin", "PATCH", f"/api/v1/tips/{tip}", json={"led_to_success": None})
    assert (again["useful"], again["led_to_success"]) == (True, None)  # left out: unchanged; null: cleared
    assert again["marked_by"] != marked["marked_by"]  # the admin marked it last

    other = _other_centralist(api)
    assert (
        api.call(other, "PATCH", f"/api/v1/tips/{tip}", expect=403, json={"useful": False})["error_id"]
        == "forbidden"
    )
    api.call("utrecht", "PATCH", f"/api/v1/tips/{tip}", expect=403, json={"useful": False})
    assert (
        api.call("centralist", "PATCH", "/api/v1/tips/999999", expect=404, json={"useful": True})["error_id"]
        == "not-found"
    )
    api.call("centralist", "PATCH", f"/api/v1/tips/{tip}", expect=422, json={})
    api.call("centralist", "PATCH", f"/api/v1/tips/{tip}", expect=422, json={"useful": "very"})
    api.call("centralist", "PATCH", f"/api/v1/tips/{tip}", expect=422, json={"helpful": True})
    api.call("centralist", "PATCH", "/api/v1/tips/0", expect=422, json={"useful": True})


def test_a_tip_without_action_is_marked_by_an_admin_only(world):
    api, _ = world
    with api.sessions() as s:
        tip = Tip(channel=TipChannel.sms, received_at=at("2026-01-05 10:00"), sms_text="zag hem")
        s.add(tip)
        s.commit()
        tip_id = tip.id
    api.call("centralist", "PATCH", f"/api/v1/tips/{tip_id}", expect=403, json={"useful": True})
    assert api.call("admin", "PATCH", f"/api/v1/tips/{tip_id}", json={"useful": True})["useful"] is True


def test_setting_the_outcome_after_the_close_changes_the_figures(world):
    api, ids = world
    # A4 expired without an outcome; later it turns out the tip led to the arrest.
    action = api.call(
        "centralist",
        "POST",
        f"/api/v1/actions/{ids['A4']}/outcome",
        json={"outcome": "direct", "outcome_detail": "arrest"},
    )
    assert (action["outcome"], action["outcome_detail"], action["expired"]) == ("direct", "arrest", True)
    january = stats(api, "summary", **JANUARY)
    assert (
        january["direct_success"],
        january["direct_success_rate"],
        january["expired_without_outcome"],
    ) == (2, 2 / 4, 0)

    assert (
        api.call(
            "centralist", "POST", f"/api/v1/actions/{ids['A5']}/outcome", expect=409, json={"outcome": "none"}
        )["error_id"]
        == "conflict"
    )  # still open: close it instead
    api.call(
        "centralist",
        "POST",
        f"/api/v1/actions/{ids['A4']}/outcome",
        expect=422,
        json={"outcome": "direct", "outcome_detail": "abducted_by_aliens"},
    )
    api.call(
        "centralist", "POST", f"/api/v1/actions/{ids['A4']}/outcome", expect=422, json={"outcome": "great"}
    )
    api.call("centralist", "POST", "/api/v1/actions/999999/outcome", expect=404, json={"outcome": "none"})
    api.call(
        _other_centralist(api),
        "POST",
        f"/api/v1/actions/{ids['A4']}/outcome",
        expect=403,
        json={"outcome": "none"},
    )
    api.call("utrecht", "POST", f"/api/v1/actions/{ids['A4']}/outcome", expect=403, json={"outcome": "none"})
    assert (
        api.call("admin", "POST", f"/api/v1/actions/{ids['A4']}/outcome", json={"outcome": "none"})["outcome"]
        == "none"
    )


# --- the pure definitions ------------------------------------------------------------------------


def test_rates_and_buckets():
    from datetime import date

    from gateway.stats.definitions import Period, bucket_of, buckets, rate

    assert (rate(1, 4), rate(0, 4), rate(0, 0)) == (0.25, 0.0, None)
    assert bucket_of(date(2026, 1, 4), "week") == "2025-12-29"  # a Sunday belongs to the Monday before
    assert bucket_of(date(2026, 1, 5), "week") == "2026-01-05"
    assert buckets(Period(date(2025, 11, 30), date(2026, 2, 1)), "month") == [
        "2025-11",
        "2025-12",
        "2026-01",
        "2026-02",
    ]
    assert buckets(Period(date(2026, 1, 1), date(2026, 1, 1)), "week") == ["2025-12-29"]
    assert Period(date(2026, 1, 1), date(2026, 1, 31)).upper == at("2026-02-01 00:00")
