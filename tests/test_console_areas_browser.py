"""The console's areas in Chromium: drawing a polygon and launching in it (see
test_console_browser.py for the live server and the browser)."""

from playwright.sync_api import expect
from sqlalchemy import select
from test_console_browser import WAIT_MS, browser, live, log_in, page, shot  # noqa: F401

from gateway.storage.models import Action, Message

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
