"""The console's areas in Chromium: drawing a polygon and launching in it (see
test_console_browser.py for the live server and the browser)."""

from playwright.sync_api import expect
from sqlalchemy import select
from test_console_browser import WAIT_MS, browser, live, log_in, page, shot  # noqa: F401

from gateway.storage.models import Action, Address, Message

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
