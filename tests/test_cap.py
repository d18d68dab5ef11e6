"""CAP 1.2 export and import: valid against the schema, a round trip keeps the action, bad input gets 422 with the line."""

from lxml import etree

from gateway import cap

IMPORT = "/api/v1/actions/import-cap"
XML = {"Content-Type": "application/xml"}


def _schema():
    return etree.XMLSchema(etree.parse(str(cap.SCHEMA)))


def _doc(info: str = "", *, msg_type: str = "Alert", status: str = "Actual", head: str = "") -> bytes:
    """A CAP alert from another system, as a neighbour's alerting system would send it."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
{head}<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>NL-ALERT-2026-0042</identifier>
  <sender>meldkamer@example.nl</sender>
  <sent>2026-01-05T10:00:00+01:00</sent>
  <status>{status}</status>
  <msgType>{msg_type}</msgType>
  <scope>Public</scope>
  {info}
</alert>""".encode()


def _info(
    area: str = "<area><areaDesc>Centrum</areaDesc><circle>52.0907,5.1214 1.5</circle></area>",
    category: str = "Rescue",
    description: str = "Meisje van 6, roze jas, blond haar.",
) -> str:
    return f"""<info>
    <category>{category}</category>
    <event>Vermissing</event>
    <urgency>Immediate</urgency>
    <severity>Severe</severity>
    <certainty>Likely</certainty>
    <description>{description}</description>
    {area}
  </info>"""


def _import(api, document: bytes, who: str = "centralist", expect: int = 201, **params):
    r = api.client.post(IMPORT, content=document, headers={**XML, **api.as_(who)}, params=params)
    assert r.status_code == expect, r.text
    return r.json()


def test_an_action_goes_out_as_cap_and_comes_back_the_same(api):
    draft = api.call(
        "centralist",
        "POST",
        "/api/v1/actions",
        expect=201,
        json={
            "type": "hit_and_run",
            "description": "Grijze bestelbus met Duits kenteken, schade rechtsvoor.",
            "lat": 51.8126,
            "lon": 5.8372,
            "radius_m": 2500,
            "channels": ["sms"],
        },
    )
    r = api.client.get(f"/api/v1/actions/{draft['id']}/cap", headers=api.as_("centralist"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    root = etree.fromstring(r.content)
    assert _schema().validate(root), _schema().error_log
    ns = {"c": cap.NS}
    assert [root.findtext(f"c:{n}", namespaces=ns) for n in ("identifier", "status", "msgType", "scope")] == [
        f"burgernet-action-{draft['id']}",
        "Draft",
        "Alert",
        "Public",
    ]
    assert root.findtext("c:info/c:category", namespaces=ns) == "Security"
    assert root.findtext("c:info/c:area/c:circle", namespaces=ns) == "51.812600,5.837200 2.5"

    copy = _import(api, r.content)
    assert copy["id"] != draft["id"] and copy["status"] == "draft"
    for field in ("type", "description", "lat", "lon", "radius_m", "channels", "centralist_id"):
        assert copy[field] == draft[field], field


def test_update_and_cancel_refer_to_the_alert(api):
    api.register("+31612345678")
    action = api.launch("Man met rode jas.")
    api.call(
        "centralist",
        "POST",
        f"/api/v1/actions/{action['id']}/updates",
        expect=201,
        json={"text": "Hij draagt nu een pet."},
    )
    ns = {"c": cap.NS}
    update = etree.fromstring(
        api.client.get(f"/api/v1/actions/{action['id']}/cap", headers=api.as_("centralist")).content
    )
    assert update.findtext("c:msgType", namespaces=ns) == "Update"
    assert update.findtext("c:references", namespaces=ns).split(",")[1] == f"burgernet-action-{action['id']}"
    assert "actiecode " + action["action_code"] in update.findtext("c:info/c:instruction", namespaces=ns)
    api.call(
        "centralist",
        "POST",
        f"/api/v1/actions/{action['id']}/close",
        json={"outcome": "direct", "outcome_detail": "arrest"},
    )
    closing = etree.fromstring(
        api.client.get(f"/api/v1/actions/{action['id']}/cap", headers=api.as_("centralist")).content
    )
    assert _schema().validate(closing)
    assert closing.findtext("c:msgType", namespaces=ns) == "Cancel"
    assert closing.findtext("c:note", namespaces=ns) == "Er is een verdachte aangehouden."
    assert closing.findtext("c:identifier", namespaces=ns) == f"burgernet-action-{action['id']}-closing"


def test_an_alert_from_another_system_becomes_a_draft(api):
    action = _import(api, _doc(_info()))
    assert (action["type"], action["radius_m"], action["status"], action["channels"]) == (
        "missing_person",
        1500,
        "draft",
        ["sms", "voice"],
    )
    assert (action["lat"], action["lon"]) == (52.0907, 5.1214)
    # A polygon: the circle round its centre that holds every corner.
    square = "<area><areaDesc>Wijk</areaDesc><polygon>52.08,5.11 52.10,5.11 52.10,5.13 52.08,5.13 52.08,5.11</polygon></area>"
    action = _import(api, _doc(_info(square, category="Security")))
    assert (
        action["type"] == "other" and 1300 < action["radius_m"] < 1310
    )  # to a corner: 1.11 km north, 0.69 km east
    assert (round(action["lat"], 6), round(action["lon"], 6)) == (52.09, 5.12)  # the mean of the four corners


def test_bad_cap_gets_a_422_that_names_the_line(api):
    broken = _import(
        api,
        b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'>\n<identifier>x</identifier>\n</alrt>",
        expect=422,
    )
    assert (
        broken["error_id"] == "invalid" and broken["details"]["line"] == 3 and "line 3" in broken["message"]
    )

    wrong = _import(api, _doc(_info(), status="Real"), expect=422)  # not one of CAP's statuses
    assert wrong["details"]["line"] == 6 and "status" in wrong["message"]

    missing_scope = _doc(_info()).replace(b"  <scope>Public</scope>\n", b"")
    assert "scope" in _import(api, missing_scope, expect=422)["message"]

    checks = [
        (_doc(_info(), msg_type="Cancel"), "msgType"),
        (_doc(""), "info"),
        (_doc(_info(area="")), "info.area"),
        (
            _doc(_info(area="<area><areaDesc>x</areaDesc><circle>Utrecht 3</circle></area>")),
            "info.area.circle",
        ),
        (_doc(_info(area="<area><areaDesc>x</areaDesc><circle>52.1,5.1 900</circle></area>")), "radius_m"),
        (_doc(_info(description="x" * 1001)), "description"),
        (b"not xml at all", "body"),
        (b"", "body"),
    ]
    for document, field in checks:
        assert _import(api, document, expect=422)["details"]["field"] == field, field


def test_no_entities_no_doctype(api):
    xxe = _doc(
        _info(description="&secret;"),
        head='<!DOCTYPE alert [<!ENTITY secret SYSTEM "file:///etc/passwd">]>\n',
    )
    body = _import(api, xxe, expect=422)
    assert "root:" not in str(body)
    bomb = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><a>&b;</a>'
    assert _import(api, bomb, expect=422)["error_id"] == "invalid"


def test_who_may_import_and_export(api):
    _import(api, _doc(_info()), who="utrecht", expect=403)
    assert _import(api, _doc(_info()), who="admin", expect=422)["details"]["field"] == "centralist_id"
    assert (
        _import(api, _doc(_info()), who="admin", centralist_id=api.centralist.id)["centralist_id"]
        == api.centralist.id
    )
    assert api.client.get("/api/v1/actions/999999/cap", headers=api.as_("centralist")).status_code == 404
    assert api.client.get("/api/v1/actions/1/cap", headers=api.as_("utrecht")).status_code == 403
