"""An action's urgency through the API, the planner that reads it, and the backlog estimates."""

import pytest

from gateway.queue.flows import FlowPlanner
from gateway.queue.schedule import Scheduler


def create(api, type_: str = "robbery") -> dict:
    return api.call(
        "centralist",
        "POST",
        "/api/v1/actions",
        expect=201,
        json={
            "type": type_,
            "description": "Gezocht.",
            "lat": 52.0907,
            "lon": 5.1214,
            "radius_m": 1000,
            "channels": ["sms", "voice"],
        },
    )


def test_urgency_is_set_from_the_type_and_follows_a_draft_change(api):
    assert create(api, "missing_person")["urgency"] == "critical"
    theft = create(api, "shop_theft")
    assert theft["urgency"] == "high"
    changed = api.call(
        "centralist", "PATCH", f"/api/v1/actions/{theft['id']}", json={"type": "missing_person"}
    )
    assert changed["urgency"] == "critical"


def test_an_admin_raises_an_actions_urgency_and_nobody_else_can(api):
    action = create(api)
    api.call(
        "centralist",
        "POST",
        f"/api/v1/actions/{action['id']}/urgency",
        expect=403,
        json={"urgency": "critical"},
    )
    raised = api.call(
        "admin", "POST", f"/api/v1/actions/{action['id']}/urgency", json={"urgency": "critical"}
    )
    assert raised["urgency"] == "critical"
    answer = api.call(
        "admin", "POST", f"/api/v1/actions/{action['id']}/urgency", expect=422, json={"urgency": "amber"}
    )
    assert "urgency" in str(answer)


def test_the_planner_weighs_flows_by_the_urgency_in_the_database(api):
    api.register(*[f"+3161000{i:04d}" for i in range(30)])
    theft = api.launch("Winkeldief.")
    child = api.launch("Meisje, 8 jaar.")  # a robbery too: high, until the admin raises it
    flows = {b: api.queue.waiting("sms")[b] for b in api.queue.waiting("sms")}
    planner = FlowPlanner(api.sessions, Scheduler(), refresh_seconds=0)
    order = planner(flows, 12)
    assert order.count(order[0]) == 6  # both high: half each
    api.call("admin", "POST", f"/api/v1/actions/{child['id']}/urgency", json={"urgency": "critical"})
    order = planner(flows, 30)  # read again (refresh_seconds=0): 8 against 4, two thirds for the child
    by_action = {flow.bulletin_id: flow.action_id for flow in planner.flows(flows).values()}
    assert [by_action[b] for b in order].count(child["id"]) in (19, 20, 21)
    assert [by_action[b] for b in order].count(theft["id"]) in (9, 10, 11)


def test_backlog_estimates_when_everyone_is_reached(api, settings):
    settings.sms_binds = '[{"name": "a", "host": "127.0.0.1", "port": 2775, "system_id": "x", "password": "y", "operator": "op", "rate_per_second": 10}]'
    api.register(*[f"+3161000{i:04d}" for i in range(40)])
    theft = api.launch("Winkeldief.")
    api.call("admin", "POST", f"/api/v1/actions/{theft['id']}/urgency", json={"urgency": "routine"})
    action = create(api, "missing_person")
    child = api.call("centralist", "POST", f"/api/v1/actions/{action['id']}/launch")["action"]
    backlog = api.call("centralist", "GET", "/api/v1/actions/backlog")
    assert [b["action_id"] for b in backlog] == [child["id"], theft["id"]]  # highest urgency first
    [child_sms], [theft_sms] = backlog[0]["channels"], backlog[1]["channels"]
    assert child_sms["waiting"] == 40 and theft_sms["waiting"] == 40
    # 10/s shared 8 : 1 while both wait: the child's 40 go in 4.5 s, the theft's 40 by 8 s.
    assert child_sms["eta_seconds"] == pytest.approx(4.5) and theft_sms["eta_seconds"] == pytest.approx(8.0)
