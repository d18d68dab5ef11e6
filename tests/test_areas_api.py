"""Drawn areas through the API: create, preview, edit and launch an action in a polygon; CAP
export and import keep the polygon (valid against OASIS's CAP 1.2 schema); bad polygons get 422."""

from lxml import etree

from gateway import cap

# A U over central Utrecht (concave: its notch is the Domplein's block).
U_SHAPE = [[52.080, 5.100], [52.100, 5.100], [52.100, 5.110], [52.085, 5.110], [52.085, 5.130], [52.100, 5.130], [52.100, 5.140], [52.080, 5.140]]  # fmt: skip
ARM, NOTCH = (52.095, 5.105), (52.095, 5.120)


def _draft(api, **area):
    body = {"type": "burglary", "description": "Twee mannen met een koevoet.", "channels": ["sms"], **area}
    return api.call("centralist", "POST", "/api/v1/actions", expect=201, json=body)


def test_an_action_in_a_polygon_reaches_the_inside_only(api):
    api.register("+31610000001", "+31610000002", lat=ARM[0], lon=ARM[1])
    api.register("+31610000003", lat=NOTCH[0], lon=NOTCH[1])  # inside the circle round the U, not the U
    action = _draft(api, polygon=U_SHAPE)
    assert action["polygon"] == [list(p) for p in U_SHAPE]
    assert (action["lat"], action["lon"]) == (52.09125, 5.12)  # the corners' mean
    assert 1800 < action["radius_m"] < 1900  # the farthest corner, 1.1 km north and 1.4 km east
    preview = api.call("centralist", "GET", f"/api/v1/actions/{action['id']}/preview")
    assert preview["total"] == 2
    # A circle's field replaces the polygon by a circle (the notch is then inside).
    edited = api.call("centralist", "PATCH", f"/api/v1/actions/{action['id']}", json={"radius_m": 3000})
    assert edited["polygon"] is None
    assert api.call("centralist", "GET", f"/api/v1/actions/{action['id']}/preview")["total"] == 3
    edited = api.call("centralist", "PATCH", f"/api/v1/actions/{action['id']}", json={"polygon": U_SHAPE})
    assert edited["polygon"] and edited["radius_m"] < 1900
    launched = api.call("centralist", "POST", f"/api/v1/actions/{action['id']}/launch")
    assert launched["queued"] == {"sms": 2}


def test_bad_polygons_get_a_422_that_says_why(api):
    cases = [
        ({"polygon": U_SHAPE, "lat": 52.0, "lon": 5.0, "radius_m": 100}, "not both"),
        ({"polygon": [[52.0, 5.0], [52.1, 5.1]]}, "at least 3"),
        ({"polygon": [[52.0, 5.0], [52.1, 5.1], [52.0, 5.0]]}, "three different corners"),
        ({"polygon": [[52.0, 5.0], [52.1, 5.1], [52.2, 5.2]]}, "one line"),
        ({"polygon": [[52.0, 5.0], [52.1, 5.1], [52.1, 5.0], [52.0, 5.1]]}, "cross each other"),
        ({"polygon": [[52.0, 5.0], [95.0, 5.1], [52.1, 5.0]]}, "less than or equal to 90"),
        ({"polygon": [[52.0, 5.0], [52.1], [52.1, 5.0]]}, "polygon"),
        ({"polygon": [[50.0, 3.0], [54.0, 3.0], [54.0, 7.0]]}, "maximum radius"),
        ({"lat": 52.0, "lon": 5.0}, "missing radius_m"),
        ({}, "missing lat, lon, radius_m"),
    ]
    for area, words in cases:
        body = {"type": "burglary", "description": "x", **area}
        r = api.client.post("/api/v1/actions", json=body, headers=api.as_("centralist"))
        assert r.status_code == 422, (area, r.text)
        assert words in r.text, (area, r.text)


def test_cap_keeps_the_polygon_both_ways(api):
    action = _draft(api, polygon=U_SHAPE)
    r = api.client.get(f"/api/v1/actions/{action['id']}/cap", headers=api.as_("centralist"))
    root = etree.fromstring(r.content)
    schema = etree.XMLSchema(etree.parse(str(cap.SCHEMA)))
    assert schema.validate(root), schema.error_log
    ns = {"c": cap.NS}
    ring = root.findtext("c:info/c:area/c:polygon", namespaces=ns).split()
    assert len(ring) == len(U_SHAPE) + 1 and ring[0] == ring[-1] == "52.080000,5.100000"
    assert root.find("c:info/c:area/c:circle", namespaces=ns) is None
    copy = api.client.post(
        "/api/v1/actions/import-cap",
        content=r.content,
        headers={"Content-Type": "application/xml", **api.as_("centralist")},
    )
    assert copy.status_code == 201, copy.text
    assert copy.json()["polygon"] == action["polygon"]
    assert (copy.json()["lat"], copy.json()["lon"], copy.json()["radius_m"]) == (
        action["lat"],
        action["lon"],
        action["radius_m"],
    )


def test_a_cap_polygon_with_crossing_edges_gets_a_422(api):
    document = f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="{cap.NS}"><identifier>x</identifier><sender>a@b.nl</sender>
<sent>2026-01-05T10:00:00+01:00</sent><status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
<info><category>Security</category><event>Inbraak</event><urgency>Immediate</urgency><severity>Moderate</severity>
<certainty>Likely</certainty><description>Inbraak.</description><area><areaDesc>Strik</areaDesc>
<polygon>52.0,5.0 52.1,5.1 52.1,5.0 52.0,5.1 52.0,5.0</polygon></area></info></alert>""".encode()
    r = api.client.post(
        "/api/v1/actions/import-cap",
        content=document,
        headers={"Content-Type": "application/xml", **api.as_("centralist")},
    )
    assert r.status_code == 422 and "cross each other" in r.json()["message"]
