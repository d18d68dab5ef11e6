"""Texts per action type with placeholders: filled in for the console, edited by admins."""

import pytest

from gateway.actions.wording import fill_template, template_problem

BURGLARY = "Inbraak {where}. Gezocht: {who}. {what} Gevlucht {direction}, {vehicle}."


def test_filling_leaves_out_sentences_without_values():
    assert fill_template(BURGLARY, {"where": "aan de Oudegracht", "who": "man, rode jas"}) == (
        "Inbraak aan de Oudegracht. Gezocht: man, rode jas."
    )
    everything = {
        "where": "aan de Oudegracht",
        "who": "man, rode jas",
        "what": "Hij had een koevoet.",
        "direction": "richting station",
        "vehicle": "op een zwarte scooter",
    }
    assert fill_template(BURGLARY, everything) == (
        "Inbraak aan de Oudegracht. Gezocht: man, rode jas. Hij had een koevoet. "
        "Gevlucht richting station, op een zwarte scooter."
    )


@pytest.mark.parametrize(
    "body,says",
    [
        ("Gezocht: {wie}.", "unknown placeholder {wie}"),
        ("Inbraak {where.", "without its partner"),
        ("Inbraak {where}.", None),
    ],
)
def test_template_problems(body, says):
    problem = template_problem(body)
    assert (problem is None) if says is None else (says in problem)


def test_templates_are_chosen_and_filled(api):
    for action_type, body in [("burglary", BURGLARY), ("robbery", "Overval {where}.")]:
        api.call(
            "admin",
            "POST",
            "/api/v1/admin/templates",
            expect=201,
            json={"action_type": action_type, "name": "Standaard", "body": body},
        )
    # (The migration's shipped templates may be there too: tests/test_migration_areas.py.)
    listed = api.call("centralist", "GET", "/api/v1/templates", params={"action_type": "burglary"})
    [burglary] = [t for t in listed if t["name"] == "Standaard"]
    assert {t["action_type"] for t in listed} == {"burglary"}
    assert burglary["placeholders"] == ["where", "who", "what", "direction", "vehicle"]
    filled = api.call(
        "centralist",
        "POST",
        f"/api/v1/templates/{burglary['id']}/fill",
        json={"where": "aan de Oudegracht", "who": "man, rode jas"},
    )
    assert filled == {"description": "Inbraak aan de Oudegracht. Gezocht: man, rode jas."}
    r = api.client.post(
        f"/api/v1/templates/{burglary['id']}/fill", json={"who": "x" * 201}, headers=api.as_("centralist")
    )
    assert r.status_code == 422


def test_admins_edit_templates_and_bad_ones_are_422(api):
    made = api.call(
        "admin",
        "POST",
        "/api/v1/admin/templates",
        expect=201,
        json={
            "action_type": "robbery",
            "name": "Overval winkel",
            "body": "Overval op {where}. Dader: {who}.",
        },
    )
    assert made["placeholders"] == ["where", "who"]
    changed = api.call(
        "admin",
        "PUT",
        f"/api/v1/admin/templates/{made['id']}",
        json={"action_type": "robbery", "name": "Overval winkel", "body": "Overval {where}."},
    )
    assert changed["body"] == "Overval {where}."
    r = api.client.post(
        "/api/v1/admin/templates",
        json={"action_type": "robbery", "name": "Fout", "body": "Dader: {wie}."},
        headers=api.as_("admin"),
    )
    assert r.status_code == 422 and "unknown placeholder {wie}" in r.text
    r = api.client.post(
        "/api/v1/admin/templates",
        json={"action_type": "robbery", "name": "Overval winkel", "body": "Overval."},
        headers=api.as_("admin"),
    )
    assert r.status_code == 409 and "exists already" in r.text
    r = api.client.post(
        "/api/v1/admin/templates",
        json={"action_type": "robbery", "name": "x", "body": "y"},
        headers=api.as_("centralist"),
    )
    assert r.status_code == 403
    api.call("admin", "DELETE", f"/api/v1/admin/templates/{made['id']}", expect=204)
    r = api.client.post(f"/api/v1/templates/{made['id']}/fill", json={}, headers=api.as_("centralist"))
    assert r.status_code == 404
