"""The console and the dashboard in a real browser (Debian's Chromium driven by Playwright) against
the real server (uvicorn on a free loopback port, PostgreSQL).

Messages move through the dry-run outbox (gateway/outbox.py) and tips arrive through the real
FastAGI server (Asterisk's side simulated by ivr/simulator.py), as in the demo. Screenshots are
kept under var/test-artifacts/ (the path is printed).
"""

import re
import socket
import threading
import uuid
import wave
from pathlib import Path

import pytest
import uvicorn
from conftest import UTRECHT, ApiWorld, _empty_tables
from playwright.sync_api import expect, sync_playwright
from polling import until
from sqlalchemy import select

from gateway.api.app import create_app
from gateway.config import Settings
from gateway.outbox import drain
from gateway.queue import MemoryQueue
from gateway.storage.db import make_engine, session_factory
from gateway.storage.models import (
    Action,
    Channel,
    Message,
    MessageStatus,
    Outcome,
    Participant,
    Tip,
    TipChannel,
)
from ivr import simulator
from ivr.context import IvrContext
from ivr.handlers import registry
from ivr.server import FastAGIServer

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "var" / "test-artifacts"
WAIT_MS = 15_000

pytestmark = pytest.mark.slow


class LiveServer:
    """The gateway's app served by uvicorn on a free loopback port, with the people of ApiWorld."""

    def __init__(self, url: str, tmp_path: Path):
        self.engine = make_engine(url)
        self.sessions = session_factory(self.engine)
        self.settings = Settings(
            environment="test",
            secret_key="test-secret-" + uuid.uuid4().hex,
            data_dir=tmp_path,
            tts_engines="espeak",  # offline: the test must not depend on Google
            audio_dir=tmp_path / "audio",
            recordings_dir=tmp_path / "recordings",
        )
        self.queue = MemoryQueue()
        app = create_app(self.settings, sessions=self.sessions, queue=self.queue, housekeeping_jobs=False)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        import httpx

        self.client = httpx.Client(base_url=self.base, timeout=30)
        until(lambda: self.server.started, 15.0, "uvicorn to start")
        self.world = ApiWorld(self.client, self.sessions, self.queue, self.settings)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)
        self.client.close()
        self.engine.dispose()


@pytest.fixture
def live(pg_url, tmp_path):
    server = LiveServer(pg_url, tmp_path)
    yield server
    server.stop()
    _empty_tables(pg_url)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make system` installs Debian's chromium", pytrace=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="nl-NL")
    page = context.new_page()
    problems: list[str] = []
    # Script errors and failed requests, except the 401 that sends a visitor without a session to log in.
    page.on(
        "console",
        lambda m: (
            m.type == "error" and not m.text.startswith("Failed to load resource") and problems.append(m.text)
        ),
    )
    page.on(
        "response",
        lambda r: (
            r.status >= 400
            and not (r.status == 401 and r.url.endswith("/api/v1/me"))
            and problems.append(f"{r.status} {r.url}")
        ),
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("dialog", lambda d: d.accept())
    page.problems = problems
    yield page
    context.close()


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def log_in(page, live: LiveServer, who: str, lands_on: str):
    page.goto(f"{live.base}/console/")
    expect(page).to_have_url(re.compile(r"/login/"))  # no session yet: sent to log in
    page.fill("#api-key", live.world.keys[who])
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(lands_on))
    expect(page.locator("body[data-ready='1']")).to_have_count(1, timeout=WAIT_MS)


def _register_around_utrecht(world: ApiWorld) -> None:
    """Five SMS numbers at the centre, two voice numbers there, three SMS numbers 1.5 km north."""
    world.register(*[f"+3161000000{i}" for i in range(5)])
    world.register("+31612000001", "+31612000002", channel="voice")
    world.register(*[f"+3161300000{i}" for i in range(3)], lat=UTRECHT[0] + 0.0135, lon=UTRECHT[1])


def _tip_call(sessions, caller: str, recordings: Path) -> None:
    """A participant calls 0800-0011; nobody answers, so she leaves a voice tip (a real WAV)."""
    ctx = IvrContext(sessions, cache=None)
    ivr = FastAGIServer(("127.0.0.1", 0), registry(ctx))
    ivr.start_in_background()
    try:
        call_id = "1795344376.77"
        env = simulator.env_block(
            "tipline",
            callerid=caller,
            uniqueid=call_id,
            agi_arg_1="PJSIP/meldkamer@meldkamer",
            agi_arg_2="/var/lib/burgernet/prompts",
        )
        token = simulator.variables(simulator.call(ivr.server_address[1], env))["BN_CALL_TOKEN"]
        asterisk_path = f"/var/spool/asterisk/recording/burgernet/tip-{call_id}"
        recordings.mkdir(parents=True, exist_ok=True)
        with wave.open(str(recordings / f"tip-{call_id}.wav"), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
            w.writeframes(b"\x00\x10" * 8000)
        hangup = simulator.env_block("tipline_hangup", uniqueid=call_id)
        hangup.update(
            {
                "agi_arg_1": "NOANSWER",
                "agi_arg_2": "0",
                "agi_arg_3": "PJSIP/4021@mk",
                "agi_arg_4": "SUCCESS",
                "agi_arg_5": asterisk_path,
                "agi_arg_6": token,
            }
        )
        simulator.call(ivr.server_address[1], hangup)
        ctx.tips.flush()
    finally:
        ivr.shutdown()
        ivr.server_close()
        ctx.tips.close()


def _voice_messages(live) -> list[int]:
    with live.sessions() as s:
        return list(
            s.scalars(select(Message.id).where(Message.channel == Channel.voice).order_by(Message.id))
        )


def _set_status(live, message_id: int, status: MessageStatus) -> None:
    with live.sessions() as s:
        s.get(Message, message_id).status = status
        s.commit()


def test_centralist_creates_launches_follows_and_closes_an_action(live, page):
    _register_around_utrecht(live.world)
    log_in(page, live, "centralist", r"/console/$")
    shot(page, "console-1-empty")

    page.select_option("#type", "missing_person")
    page.fill("#description", "Vermist: Sanne, 6 jaar, roze jas en blauwe laarsjes.")
    page.evaluate("() => consoleMap.setView([52.0907, 5.1214], 13)")
    point = page.evaluate("() => consoleMap.latLngToContainerPoint([52.0907, 5.1214])")
    page.locator("#map").click(position={"x": point["x"], "y": point["y"]})
    # The live number of recipients at the default 1 km: the seven numbers at the centre.
    expect(page.locator("#recipients")).to_have_text("7", timeout=WAIT_MS)
    expect(page.locator("#recipients-voice")).to_have_text("2")
    page.locator("#radius").fill("2000")
    expect(page.locator("#radius-label")).to_have_text("2,0 km")
    expect(page.locator("#recipients")).to_have_text("10", timeout=WAIT_MS)  # the three 1.5 km north join
    expect(page.locator("#sms-meta")).to_contain_text("GSM 7-bit")
    expect(page.locator("#sms-text")).to_contain_text("Sanne")
    with page.expect_response(lambda r: "/audio" in r.url) as audio:
        page.click("#play")
    assert (
        audio.value.status in (200, 206) and audio.value.headers["content-type"] == "audio/wav"
    )  # 206: a media range request
    page.wait_for_function(
        "() => document.querySelector('#audio').duration > 1", timeout=WAIT_MS
    )  # the browser decoded speech
    shot(page, "console-2-draft")

    with live.sessions() as s:
        action = s.scalars(select(Action)).one()
        assert (action.radius_m, action.status.value) == (2000, "draft")
        assert abs(action.lat - 52.0907) < 0.001 and abs(action.lon - 5.1214) < 0.001

    page.click("#launch")
    expect(page.locator("#live-status")).to_have_text("Lopend", timeout=WAIT_MS)
    expect(page.locator("[data-figure=queued]")).to_have_attribute("data-count", "10", timeout=WAIT_MS)
    # A missing person: critical. What still waits, and (for voice: lines over a call's length) when
    # everyone should be reached; no SMS estimate without a contracted rate.
    expect(page.locator("#backlog")).to_contain_text("Urgentie: zeer urgent")
    expect(page.locator("#backlog")).to_contain_text(
        "SMS: 8 wachtend · spraak: 2 wachtend, iedereen bereikt over ~5 s"
    )

    # The dry-run outbox hands the SMS to "the SMSC": the console shows them sent, live.
    assert drain(live.sessions, live.queue, "sms") == 8
    expect(page.locator("[data-figure=sent]")).to_have_attribute("data-count", "8", timeout=WAIT_MS)
    expect(page.locator("[data-figure=queued]")).to_have_attribute("data-count", "2")

    # The voice worker's states, as it would write them: one call ringing, then one answered.
    voice = _voice_messages(live)
    _set_status(live, voice[0], MessageStatus.sending)
    expect(page.locator("[data-figure=calling]")).to_have_attribute("data-count", "1", timeout=WAIT_MS)
    _set_status(live, voice[0], MessageStatus.answered)
    expect(page.locator("[data-figure=answered]")).to_have_attribute("data-count", "1", timeout=WAIT_MS)
    expect(page.locator("[data-figure=calling]")).to_have_attribute("data-count", "0")

    with live.sessions() as s:  # an SMS reply, as the SMS channel logs it
        s.add(
            Tip(
                channel=TipChannel.sms,
                action_id=action.id,
                caller_number="+31610000001",
                sms_text="Ik zie haar bij de bakker",
            )
        )
        s.commit()
    expect(page.locator(".tip[data-channel=sms]")).to_contain_text(
        "Ik zie haar bij de bakker", timeout=WAIT_MS
    )
    _tip_call(live.sessions, "0610000000", live.settings.recordings_dir)
    tip = page.locator(".tip[data-channel=call]")
    expect(tip).to_have_count(1, timeout=WAIT_MS)
    expect(tip).to_contain_text("niet opgenomen")
    recording = tip.locator("audio")
    expect(recording).to_have_count(1)
    src = recording.get_attribute("src")
    response = page.request.get(live.base + src)  # the page's session cookie authenticates
    assert response.status == 200 and response.body()[:4] == b"RIFF"
    # Marking the tip (the statistics count it): the buttons show the mark once it is stored.
    tip.locator("[data-mark=useful]").click()
    expect(tip.locator("[data-mark=useful]")).to_have_class(re.compile(r"\bon\b"), timeout=WAIT_MS)
    tip.locator("[data-mark=led_to_success]").click()
    expect(tip.locator("[data-mark=led_to_success]")).to_have_class(re.compile(r"\bon\b"), timeout=WAIT_MS)
    with live.sessions() as s:
        marked = s.scalars(select(Tip).where(Tip.channel == TipChannel.call)).one()
        assert (marked.useful, marked.led_to_success, marked.action_id) == (True, True, action.id)
    shot(page, "console-3-live")

    page.fill("#update-text", "Sanne heeft mogelijk een rode step bij zich.")
    page.click("#send-update")
    expect(page.locator("#live-message")).to_contain_text("Update verstuurd naar 10", timeout=WAIT_MS)
    # The update goes to all ten; the second voice alert is still waiting: 11 queued.
    expect(page.locator("[data-figure=queued]")).to_have_attribute("data-count", "11", timeout=WAIT_MS)

    page.select_option("#outcome", "direct")
    page.select_option("#outcome-detail", "person_found")
    page.click("#close-action")
    expect(page.locator("#live-status")).to_have_text("Afgesloten", timeout=WAIT_MS)
    expect(page.locator("#outcome-text")).to_contain_text("Direct succes — Persoon gevonden")
    # What had not gone out is cancelled; the nine numbers reached (8 SMS, 1 answered call) get the closing message.
    expect(page.locator("[data-figure=cancelled]")).to_have_attribute("data-count", "11", timeout=WAIT_MS)
    expect(page.locator("[data-figure=queued]")).to_have_attribute("data-count", "0")
    expect(page.locator("#closing-progress")).to_have_text(
        "Slotbericht: 8 SMS in wachtrij, 1 spraak in wachtrij"
    )
    # A later correction of the outcome (nothing is sent again).
    page.select_option("#outcome", "indirect")
    page.click("#correct-outcome")
    expect(page.locator("#outcome-text")).to_contain_text(
        "Indirect succes — Persoon gevonden", timeout=WAIT_MS
    )
    shot(page, "console-4-closed")
    cap = page.request.get(live.base + page.locator("#cap-link").get_attribute("href"))
    assert (
        cap.status == 200 and b"<msgType>Cancel</msgType>" in cap.body()
    )  # the closed action, for other systems
    with live.sessions() as s:
        action = s.scalars(select(Action)).one()
        assert (action.status.value, action.outcome, action.outcome_detail) == (
            "closed",
            Outcome.indirect,
            "person_found",
        )
    assert page.problems == [], page.problems


BAD_CSV = (
    "name,phone,postcode,house_number,lat,lon,channel\n"
    "Anna de Vries,0612340001,3511 AB,1,52.09,5.12,sms\n"
    "Bert Bakker,12345,3511 AB,2,52.09,5.12,sms\n"  # line 3: not a phone number
    "Carla Smit,0612340003,3511 AC,3,52.09,5.12,sms\n"
    "Dirk Jansen,0612340004,ABCD,4,52.09,5.12,sms\n"  # line 5: not a Dutch postcode
)


def test_municipality_imports_a_csv_and_is_told_which_rows_are_wrong_and_why(live, page):
    log_in(page, live, "utrecht", r"/dashboard/$")
    expect(page.locator("#municipality-name")).to_have_text("Utrecht")
    page.set_input_files(
        "#csv-file", files=[{"name": "deelnemers.csv", "mimeType": "text/csv", "buffer": BAD_CSV.encode()}]
    )
    page.click("#import")
    expect(page.locator("#import-message")).to_contain_text(
        "4 regels: 2 nieuw, 0 bijgewerkt, 2 regels met fouten", timeout=WAIT_MS
    )
    rows = page.locator("#import-errors tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("data-row", "3")
    expect(rows.nth(0)).to_contain_text("phone")
    expect(rows.nth(1)).to_have_attribute("data-row", "5")
    expect(rows.nth(1)).to_contain_text("postcode")
    expect(rows.nth(1)).to_contain_text("ABCD")
    expect(page.locator("#participants tbody tr")).to_have_count(2)
    expect(page.locator("#participants")).to_contain_text("Carla Smit")
    shot(page, "dashboard-import")
    assert page.problems == [], page.problems


def test_municipality_adds_and_edits_a_participant(live, page):
    log_in(page, live, "utrecht", r"/dashboard/$")
    page.click("#add-participant")
    page.fill("#p-name", "Eva Visser")
    page.fill("#p-phone", "12345")
    address = page.locator("#p-addresses fieldset").first
    address.locator("[name=postcode]").fill("3511 AB")
    address.locator("[name=house_number]").fill("7")
    address.locator("[name=lat]").fill("52,0907")  # a Dutch decimal comma is fine
    address.locator("[name=lon]").fill("5.1214")
    page.click("#p-save")
    expect(page.locator("#participant-message")).to_contain_text(
        "phone", timeout=WAIT_MS
    )  # told what is wrong
    page.fill("#p-phone", "06 1234 0009")
    page.click("#p-save")
    row = page.locator("#participants tbody tr", has_text="Eva Visser")
    expect(row).to_contain_text("+31612340009", timeout=WAIT_MS)
    row.get_by_role("button", name="Wijzigen").click()
    expect(page.locator("#p-name")).to_have_value("Eva Visser")
    page.fill("#p-name", "Eva de Visser")
    page.click("#p-add-address")
    second = page.locator("#p-addresses fieldset").nth(1)
    second.locator("[name=postcode]").fill("3512 CD")
    second.locator("[name=house_number]").fill("9")
    second.locator("[name=lat]").fill("52.09")
    second.locator("[name=lon]").fill("5.12")
    second.locator("[name=channel]").select_option("voice")
    shot(page, "dashboard-participant-dialog")
    page.click("#p-save")
    row = page.locator("#participants tbody tr", has_text="Eva de Visser")
    expect(row).to_contain_text("3511 AB 7; 3512 CD 9", timeout=WAIT_MS)
    expect(row).to_contain_text("SMS, spraak")
    with live.sessions() as s:
        stored = s.scalars(select(Participant)).one()
        assert (stored.name, stored.municipality_id, len(stored.addresses)) == (
            "Eva de Visser",
            live.world.utrecht.id,
            2,
        )
    shot(page, "dashboard-participant")


def test_a_municipality_sees_only_its_own_participants_in_the_page_and_the_api(live, page):
    live.world.register("+31614000001")  # Utrecht's (ApiWorld registers for Utrecht)
    with live.sessions() as s:
        s.add(
            Participant(
                municipality_id=live.world.zeist.id, name="Zeister Zus", phone="+31614000002", addresses=[]
            )
        )
        s.commit()
        zeister = s.scalars(select(Participant).where(Participant.name == "Zeister Zus")).one().id
    log_in(page, live, "utrecht", r"/dashboard/$")
    expect(page.locator("#participants tbody tr")).to_have_count(1)
    expect(page.locator("#participants")).not_to_contain_text("Zeister")
    page.fill("#search", "Zeister")
    expect(page.locator("#participants")).to_contain_text("Niemand gevonden.", timeout=WAIT_MS)
    shot(page, "dashboard-isolation")
    # The same session through the API: not listed, not readable, not changeable.
    listed = page.request.get(f"{live.base}/api/v1/participants?q=Zeister").json()
    assert listed == []
    assert page.request.get(f"{live.base}/api/v1/participants/{zeister}").status == 403
    assert (
        page.request.delete(
            f"{live.base}/api/v1/participants/{zeister}", headers={"X-Burgernet-Request": "1"}
        ).status
        == 403
    )
    with live.sessions() as s:
        assert s.get(Participant, zeister) is not None
    # Logging out ends the session for the page and for the API.
    page.click("#logout")
    expect(page).to_have_url(re.compile(r"/login/$"))
    assert page.request.get(f"{live.base}/api/v1/participants").status == 401
    page.fill("#api-key", "bn_not_a_real_key")
    page.click("button[type=submit]")
    expect(page.locator("#login-message")).to_have_text("Deze sleutel is onbekend of ingetrokken.")
    shot(page, "login-refused")


def test_the_dashboard_shows_the_municipalitys_figures_against_the_region(live, page):
    world = live.world
    world.register("+31615000001", "+31615000002")  # Utrecht's
    action = world.launch("Overval op een juwelier; man met rode jas.")
    drain(live.sessions, live.queue, "sms")
    world.call(
        "centralist",
        "POST",
        f"/api/v1/actions/{action['id']}/close",
        json={"outcome": "direct", "outcome_detail": "arrest"},
    )
    log_in(page, live, "utrecht", r"/dashboard/$")
    expect(page.locator("[data-figure=actions] .value")).to_have_text("1", timeout=WAIT_MS)
    expect(page.locator("[data-figure=direct] .value")).to_have_text("100,0\u00a0%")
    rows = page.locator("#area-actions tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Overval")
    expect(rows.first).to_contain_text("Direct succes")
    # The charts are drawn from the statistics API: this month's sign-ups, and success side by side.
    signups = page.evaluate("() => Chart.getChart('signups-chart').data.datasets.map(d => d.data.at(-1))")
    assert signups == [2, 2, 0], signups  # total, new, unsubscribed (drawn below the axis)
    success = page.evaluate(
        "() => Chart.getChart('success-chart').data.datasets.map(d => [d.label, d.data[1]])"
    )
    # Only Utrecht has participants: the region's and the country's averages would be hers — or,
    # with one neighbour, the neighbour's by subtraction — so the API gives none (gateway.policy).
    assert success == [["Utrecht", 100], ["gemiddelde Midden-Nederland", None], ["landelijk", None]], success
    shot(page, "dashboard-figures")
    assert page.problems == [], page.problems
