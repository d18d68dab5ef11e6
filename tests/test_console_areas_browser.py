"""The console's areas in Chromium: drawing a polygon and launching in it (see
test_console_browser.py for the live server and the browser)."""

from datetime import datetime, timedelta

import pytest
from map_fakes import Geocoder, TileServer
from playwright.sync_api import expect
from sqlalchemy import select
from test_console_browser import WAIT_MS, browser, live, log_in, page, shot  # noqa: F401

from gateway.storage.models import Action, Address, Message, Participant
from gateway.targeting.select import LOCAL_TZ

# A U over central Utrecht; two numbers in its western arm, one in its notch (outside it).
U_SHAPE = [(52.080, 5.100), (52.100, 5.100), (52.100, 5.110), (52.085, 5.110), (52.085, 5.130), (52.100, 5.130), (52.100, 5.140), (52.080, 5.140)]  # fmt: skip


def _click_on_map(tab, lat: float, lon: float) -> None:
    point = tab.evaluate(f"() => consoleMap.latLngToContainerPoint([{lat}, {lon}])")
    tab.locator("#map").click(position={"x": point["x"], "y": point["y"]})


def test_centralist_draws_a_polygon_and_launches_in_it(live, page):  # noqa: F811
    live.world.register("+31610000001", "+31610000002", lat=52.095, lon=5.105)
    live.world.register("+31610000003", lat=52.095, lon=5.120)  # the notch
    live.world.register("+31610000004", lat=52.095, lon=5.135)  # the eastern arm
    log_in(page, live, "centralist", r"/console/$")
    page.select_option("#type", "burglary")
    page.fill("#description", "Twee mannen met een koevoet, op de vlucht door de tuinen.")
    page.evaluate("() => consoleMap.setView([52.09, 5.12], 13)")

    page.click("#draw-area")
    expect(page.locator("#finish-area")).to_be_disabled()
    for lat, lon in U_SHAPE:
        _click_on_map(page, lat, lon)
    expect(page.locator("#area-hint")).to_contain_text("8 hoeken")
    page.click("#finish-area")
    # The live count: both arms, not the notch.
    expect(page.locator("#recipients")).to_have_text("3", timeout=WAIT_MS)
    shot(page, "console-areas-1-polygon")
    with live.sessions() as s:
        action = s.scalars(select(Action)).one()
        assert action.polygon is not None and len(action.polygon) == 8
        for (lat, lon), (want_lat, want_lon) in zip(action.polygon, U_SHAPE):
            assert abs(lat - want_lat) < 0.0005 and abs(lon - want_lon) < 0.0005  # a click's pixel

    page.click("#launch")
    expect(page.locator("#live-status")).to_have_text("Lopend", timeout=WAIT_MS)
    expect(page.locator("#live-description")).to_contain_text("getekend gebied (8 hoeken)")
    expect(page.locator("[data-figure=queued]")).to_have_attribute("data-count", "3", timeout=WAIT_MS)
    with live.sessions() as s:
        assert sorted(s.scalars(select(Message.phone))) == ["+31610000001", "+31610000002", "+31610000004"]
    shot(page, "console-areas-2-launched")
    assert not page.problems, page.problems


def test_municipality_gives_an_address_a_weekday_window(live, page):  # noqa: F811
    log_in(page, live, "utrecht", r"/dashboard/$")
    page.click("#add-participant")
    page.fill("#p-name", "Ruben Werkman")
    page.fill("#p-phone", "06 1234 0010")
    address = page.locator("#p-addresses fieldset").first
    address.locator("[name=postcode]").fill("3511 AB")
    address.locator("[name=house_number]").fill("7")
    address.locator("[name=lat]").fill("52.0907")
    address.locator("[name=lon]").fill("5.1214")
    # Work: weekdays 08:00–17:30, and Friday night 22:00–02:00 (past midnight).
    address.locator(".add-window").click()
    office = address.locator(".window").nth(0)
    for day in ("sa", "su"):
        office.locator(f"[name=day-{day}]").uncheck()
    office.locator("[name=start]").fill("08:00")
    office.locator("[name=end]").fill("17:30")
    address.locator(".add-window").click()
    night = address.locator(".window").nth(1)
    for day in ("mo", "tu", "we", "th", "sa", "su"):
        night.locator(f"[name=day-{day}]").uncheck()
    night.locator("[name=start]").fill("22:00")
    night.locator("[name=end]").fill("2:00")  # wrong: told what is wrong
    page.click("#p-save")
    expect(page.locator("#participant-message")).to_contain_text("HH:MM", timeout=WAIT_MS)
    night.locator("[name=end]").fill("02:00")
    shot(page, "dashboard-weekday-window")
    page.click("#p-save")
    row = page.locator("#participants tbody tr", has_text="Ruben Werkman")
    expect(row).to_be_visible(timeout=WAIT_MS)
    with live.sessions() as s:
        [stored] = s.scalars(select(Address.windows)).all()
    assert stored == "mo-fr 08:00-17:30; fr 22:00-02:00"
    # Opening it again shows the windows as stored.
    row.get_by_role("button", name="Wijzigen").click()
    windows = page.locator("#p-addresses .window")
    expect(windows).to_have_count(2)
    expect(windows.nth(1).locator("[name=day-fr]")).to_be_checked()
    expect(windows.nth(1).locator("[name=day-sa]")).not_to_be_checked()
    expect(windows.nth(1).locator("[name=end]")).to_have_value("02:00")
    assert not [p for p in page.problems if "422" not in p], page.problems


def test_municipality_sends_a_message_that_waits_for_windows(live, page):  # noqa: F811
    live.world.call(
        "admin",
        "PUT",
        f"/api/v1/municipalities/{live.world.utrecht.id}/boundary",
        json={"polygon": [[52.03, 5.02], [52.14, 5.02], [52.14, 5.20], [52.03, 5.20]]},
    )
    live.world.register("+31610000001", "+31610000002")
    with live.sessions() as s:  # the second only in a window three hours from now
        later = datetime.now(LOCAL_TZ) + timedelta(hours=3)
        address = s.scalars(
            select(Address).join(Participant).where(Participant.phone == "+31610000002")
        ).one()
        address.windows = f"{later:%H}:00-{later + timedelta(hours=1):%H}:00"
        s.commit()
    log_in(page, live, "utrecht", r"/dashboard/$")
    page.fill("#m-description", "Let op: inbrekers actief in de wijk. Sluit ramen en deuren.")
    page.evaluate("() => messageMap.setView([52.0907, 5.1214], 13)")
    point = page.evaluate("() => messageMap.latLngToContainerPoint([52.0907, 5.1214])")
    page.locator("#m-map").click(position={"x": point["x"], "y": point["y"]})
    page.click("#m-preview")
    expect(page.locator("#m-total")).to_have_text("2", timeout=WAIT_MS)
    expect(page.locator("#m-waiting")).to_have_text("1")
    expect(page.locator("#m-sms")).to_have_text(
        "Burgernet, gemeente Utrecht: Let op: inbrekers actief in de wijk. Sluit ramen en deuren."
    )
    page.click("#m-send")
    expect(page.locator("#m-message")).to_have_text(
        "Verstuurd: 2 ontvangers, van wie 1 zodra hun venster opent.", timeout=WAIT_MS
    )
    row = page.locator("#messages tbody tr").first
    expect(row).to_contain_text("Let op: inbrekers")
    expect(row.locator("[data-waiting]")).to_have_attribute("data-waiting", "1")
    expect(row.locator("[data-released]")).to_have_attribute("data-released", "1")
    shot(page, "dashboard-municipality-message")
    with live.sessions() as s:
        action = s.scalars(select(Action)).one()
        assert (action.urgency.value, action.centralist_id, action.action_code) == ("routine", None, None)
        assert s.scalars(select(Message.phone)).all() == ["+31610000001"]
    # Outside the municipality: refused, and told why.
    page.evaluate("() => messageMap.setView([52.156, 5.387], 13)")  # Amersfoort
    point = page.evaluate("() => messageMap.latLngToContainerPoint([52.156, 5.387])")
    page.locator("#m-map").click(position={"x": point["x"], "y": point["y"]})
    page.click("#m-preview")
    expect(page.locator("#m-message")).to_contain_text("reaches outside Utrecht", timeout=WAIT_MS)
    assert [p for p in page.problems if "403" not in p] == [], page.problems


@pytest.fixture
def map_services():
    tiles = TileServer()
    geocoder = Geocoder({("3512JE", "10"): (52.0911, 5.1223)})
    yield tiles, geocoder
    tiles.stop()
    geocoder.stop()


def test_centralist_places_the_incident_by_address_on_a_street_map(live, page, map_services):  # noqa: F811
    tiles, geocoder = map_services
    live.settings.map_tiles_url = tiles.url
    live.settings.geocoder_url = geocoder.url
    live.world.register("+31610000001", "+31610000002", lat=52.0911, lon=5.1223)
    log_in(page, live, "centralist", r"/console/$")
    page.fill("#description", "Overval op een juwelier; twee mannen op een scooter richting het station.")
    # An address nobody registered: the geocoder (PDOK Locatieserver's shape) knows it.
    page.fill("#addr-postcode", "3512 JE")
    page.fill("#addr-number", "10")
    page.click("#addr-find")
    expect(page.locator("#address-message")).to_contain_text("Teststraat 10", timeout=WAIT_MS)
    expect(page.locator("#recipients")).to_have_text("2", timeout=WAIT_MS)
    page.wait_for_function("() => [...document.querySelectorAll('.leaflet-tile')].some((t) => t.complete)")
    assert any(p.endswith(".png") for p in tiles.requests)  # the base layer came from the tile server
    path = shot(page, "console-address-on-street-map")
    with live.sessions() as s:
        action = s.scalars(select(Action)).one()
        assert (action.lat, action.lon) == (52.0911, 5.1223)
    # An unknown address: told, nothing moves.
    page.fill("#addr-number", "99")
    page.click("#addr-find")
    expect(page.locator("#address-message")).to_contain_text("not found", timeout=WAIT_MS)
    assert path.exists()
    assert [p for p in page.problems if "404" not in p] == [], page.problems


def test_centralist_writes_the_description_from_a_template(live, page):  # noqa: F811
    live.world.call(
        "admin",
        "POST",
        "/api/v1/admin/templates",
        expect=201,
        json={
            "action_type": "robbery",
            "name": "Overval (test)",
            "body": "Overval {where}. Gezocht: {who}. Gevlucht {direction} {vehicle}. {what}",
        },
    )
    live.world.register("+31610000001")
    log_in(page, live, "centralist", r"/console/$")
    page.select_option("#type", "robbery")
    page.click("#template-box summary")
    page.select_option("#template", label="Overval (test)")
    page.fill("#t-where", "op de juwelier aan de Oudegracht")
    page.fill("#t-who", "twee mannen, zwarte jassen, een met rode pet")
    page.fill("#t-vehicle", "op een grijze scooter")
    page.click("#template-fill")
    expect(page.locator("#description")).to_have_value(
        "Overval op de juwelier aan de Oudegracht. Gezocht: twee mannen, zwarte jassen, een met rode pet. "
        "Gevlucht op een grijze scooter.",
        timeout=WAIT_MS,
    )
    page.evaluate("() => consoleMap.setView([52.0907, 5.1214], 13)")
    _click_on_map(page, 52.0907, 5.1214)
    # The preview as for any text: the SMS (and its parts) and the spoken script.
    expect(page.locator("#sms-text")).to_contain_text("Overval op de juwelier", timeout=WAIT_MS)
    expect(page.locator("#sms-meta")).to_contain_text("GSM 7-bit · 2 delen")
    expect(page.locator("#spoken-text")).to_contain_text(
        "Hier volgt een oproep voor Burgernet. Overval op de juwelier"
    )
    shot(page, "console-template")
    assert not page.problems, page.problems
