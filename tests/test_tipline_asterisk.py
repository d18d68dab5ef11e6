"""The tip line on a real Asterisk 22: calls to 0800-0011 enter our dialplans/tipline.conf from the
trunk side, reach our FastAGI server on the host and ring the phones the IVR chose.

Callers are AMI-originated Local channels whose far side ([test-caller]) keys DTMF and holds the
line; centralists and the meldkamer are [test-endpoints] that answer, or never answer. PostgreSQL
only: the SQLite paths of the same code are covered in test_tipline.py.
"""

import threading
import time

import pytest
from asterisk_harness import RawAMI
from polling import until
from sqlalchemy import select, update

from gateway import prompts
from gateway.storage.models import Centralist, MatchedBy, Tip, TipLeg
from gateway.tipline.lookup import RouteCache
from gateway.tipline.tipstream import TipStream, TipStreamWriter
from ivr.context import IvrContext
from ivr.handlers import registry
from ivr.server import FastAGIServer

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

ANSWERS = "Local/answer@test-endpoints"
NEVER_ANSWERS = "Local/noanswer@test-endpoints"
DID = "08000011"
RECORDINGS = "/var/spool/asterisk/recording/burgernet"


@pytest.fixture
def tipline(request, api, asterisk):
    """Asterisk's globals pointed at a FastAGI server on the host over the test database: SQL
    only, or (parametrized "redis") as in production with the route cache, the tip stream and a
    tip writer running beside it."""
    root = asterisk.chroot
    prompts.build(root / "var/lib/burgernet/prompts")
    asterisk.run_in_chroot("install", "-d", "-o", "asterisk", "-g", "asterisk", RECORDINGS)
    api.route_cache = writer = None
    stop = threading.Event()
    if getattr(request, "param", "sql") == "redis":
        redis_url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("key_prefix")
        api.route_cache, stream = RouteCache(redis_url, prefix=prefix), TipStream(redis_url, prefix=prefix)
        writer = TipStreamWriter(stream, api.sessions, "asterisk-test-writer")
        writing = threading.Thread(target=writer.run, args=(stop,), kwargs={"block_ms": 100}, daemon=True)
        writing.start()
        ctx = IvrContext(api.sessions, api.route_cache, stream=stream)
    else:
        ctx = IvrContext(api.sessions, cache=None)
    server = FastAGIServer(("127.0.0.1", 0), registry(ctx))
    server.start_in_background()
    ami = RawAMI(asterisk.ami_host, asterisk.ami_port, timeout=60)
    assert ami.login(asterisk.ami_user, asterisk.ami_secret)["Response"] == "Success"
    for name, value in {
        "BN_IVR": f"agi://127.0.0.1:{server.server_address[1]}",
        "BN_MELDKAMER_DIAL": ANSWERS,
        "BN_RING_SECONDS": "3",
    }.items():
        assert ami.action("Setvar", ("Variable", name), ("Value", value))["Response"] == "Success"
    api.ami, api.asterisk, api.fastagi = ami, asterisk, server
    yield api
    ami.action("Hangup", ("Channel", "/^Local/"))
    ami.close()
    server.shutdown()
    server.server_close()
    stop.set()
    if writer is not None:
        writing.join(10)
        writer.close()
    ctx.close()


def centralist_phone(api, dial: str) -> None:
    with api.sessions() as s:
        s.execute(update(Centralist).values(dial_string=dial))
        s.commit()


def register(api, phone: str) -> None:
    api.register(phone)


def launch(api, description="Man met rode jas.") -> dict:
    opened = api.launch(description)
    if api.route_cache is not None:  # what the IVR's cache keeper does (ivr/main.py)
        with api.sessions() as s:
            api.route_cache.rebuild(s)
    return opened


def dial_in(api, callerid: str, *, dtmf: str = "", hold: int = 6, delay: float = 1.5) -> None:
    """A participant calls the tip line: the trunk delivers the DID to [tipline-inbound]."""
    response = api.ami.action(
        "Originate",
        ("Channel", f"Local/{DID}@tipline-inbound"),
        ("Context", "test-caller"),
        ("Exten", "s"),
        ("Priority", "1"),
        ("CallerID", callerid),
        ("Variable", f"DTMF={dtmf}"),
        ("Variable", f"HOLD={hold}"),
        ("Variable", f"DTMF_DELAY={delay}"),
        ("Async", "true"),
    )
    assert response["Response"] == "Success", response


def finished_tips(api, count: int, timeout: float = 90) -> list[Tip]:
    """Wait until `count` tips are complete (their hangup was reported), and return them."""
    done: list[Tip] = []

    def finished() -> bool:
        with api.sessions() as s:
            done[:] = s.scalars(select(Tip).where(Tip.ended_at.is_not(None)).order_by(Tip.id)).all()
        return len(done) >= count

    until(
        finished,
        timeout,
        lambda: f"{count} finished tips, {len(done)} so far; Asterisk log:\n{api.asterisk._log_tail()}",
        every=0.2,
    )
    assert len(done) == count, (
        f"{len(done)} of {count} tips finished; Asterisk log:\n{api.asterisk._log_tail()}"
    )
    return done


@pytest.mark.parametrize("tipline", ["sql", "redis"], indirect=True)
def test_a_participant_who_received_the_action_is_put_through_to_its_centralist(tipline):
    centralist_phone(tipline, ANSWERS)
    register(tipline, "+31612345678")
    action = launch(tipline)
    dial_in(tipline, '"Jan" <0612345678>', hold=5)
    [tip] = finished_tips(tipline, 1)
    assert (tip.matched_by, tip.action_id, tip.caller_number) == (
        MatchedBy.caller_id,
        action["id"],
        "+31612345678",
    )
    assert (tip.routed_to, tip.dial_status) == (ANSWERS, "ANSWER")
    assert tip.talk_seconds is not None and tip.talk_seconds >= 1
    assert tip.participant_id is not None and tip.recording_path is None


def legs(api, tip: Tip) -> list[tuple]:
    with api.sessions() as s:
        return [
            (leg.dialed, leg.dial_status, leg.answered_at is not None)
            for leg in s.scalars(select(TipLeg).where(TipLeg.call_id == tip.call_id).order_by(TipLeg.leg))
        ]


def test_the_talk_time_counts_from_the_centralists_answer_not_the_callers(tipline):
    """A withheld caller listens to the code prompt and keys the code (Dial()'s ANSWEREDTIME
    would count all that as talk); the centralist answers and hangs up after 5 s. Measured
    against the AMI events of the same call: the answer (DialEnd) and the caller's hangup."""
    events = RawAMI(tipline.asterisk.ami_host, tipline.asterisk.ami_port, timeout=60)
    assert (
        events.login(tipline.asterisk.ami_user, tipline.asterisk.ami_secret, "call")["Response"] == "Success"
    )
    try:
        centralist_phone(tipline, ANSWERS)
        tipline.ami.action("Setvar", ("Variable", "HOLD"), ("Value", "5"))  # the centralist's, inherited
        action = launch(tipline)
        dial_in(tipline, '"Anonymous" <anonymous>', dtmf=f"{action['action_code']}#", hold=30, delay=4)
        events.wait_event("DialEnd", DialStatus="ANSWER", DestChannel=ANSWERS)  # not the caller's own
        answered = time.time()
        events.wait_event("Hangup", Channel=f"Local/{DID}@tipline-inbound")
        ended = time.time()
    finally:
        events.close()
        tipline.ami.action("Setvar", ("Variable", "HOLD"), ("Value", ""))
    [tip] = finished_tips(tipline, 1)
    assert (tip.matched_by, tip.dial_status) == (MatchedBy.action_code, "ANSWER")
    assert abs(tip.talk_seconds - (ended - answered)) <= 1, (tip.talk_seconds, ended - answered)
    assert (tip.ended_at - tip.received_at).total_seconds() > tip.talk_seconds + 4  # the prompt came first
    assert legs(tipline, tip) == [(ANSWERS, "ANSWER", True)]


def test_a_withheld_caller_keys_the_code_and_wrong_codes_end_at_the_meldkamer(tipline):
    centralist_phone(tipline, "Local/answer@test-endpoints/n")
    action = launch(tipline)
    dial_in(tipline, '"Anonymous" <anonymous>', dtmf=f"{action['action_code']}#", hold=4)
    # Three wrong codes, each keyed during the code prompt, after the "unknown code" message.
    dial_in(tipline, '"Anonymous" <anonymous>', dtmf="9#wwwwww8#wwwwww7#", hold=16)
    by_code, wrong = finished_tips(tipline, 2, timeout=120)
    if by_code.matched_by is MatchedBy.none:
        by_code, wrong = wrong, by_code
    assert (by_code.matched_by, by_code.action_id, by_code.routed_to) == (
        MatchedBy.action_code,
        action["id"],
        "Local/answer@test-endpoints/n",
    )
    assert (wrong.matched_by, wrong.action_id, wrong.routed_to) == (MatchedBy.none, None, ANSWERS)
    assert by_code.dial_status == wrong.dial_status == "ANSWER"


@pytest.mark.parametrize("tipline", ["sql", "redis"], indirect=True)
def test_a_caller_reached_by_two_open_actions_chooses_from_the_menu(tipline):
    centralist_phone(tipline, ANSWERS)
    register(tipline, "+31612345678")
    first = launch(tipline, "Eerste actie.")
    launch(tipline, "Tweede actie.")
    dial_in(tipline, "<0612345678>", dtmf="2", hold=4)
    [tip] = finished_tips(tipline, 1)
    assert (tip.matched_by, tip.action_id) == (MatchedBy.caller_id, first["id"])


def test_an_unanswered_centralist_falls_back_to_the_meldkamer_and_then_to_a_voice_tip(tipline):
    register(tipline, "+31612345678")
    centralist_phone(tipline, NEVER_ANSWERS)
    action = launch(tipline)
    dial_in(tipline, "<0612345678>", hold=12)
    [tip] = finished_tips(tipline, 1)
    assert (tip.action_id, tip.routed_to, tip.dial_status) == (action["id"], ANSWERS, "ANSWER")
    assert legs(tipline, tip) == [(NEVER_ANSWERS, "NOANSWER", False), (ANSWERS, "ANSWER", True)]

    # Now nobody answers: not the centralist, not the meldkamer. The caller leaves a voice tip.
    tipline.ami.action("Setvar", ("Variable", "BN_MELDKAMER_DIAL"), ("Value", NEVER_ANSWERS))
    try:
        dial_in(tipline, "<0612345678>", hold=14)
        second = finished_tips(tipline, 2)[1]
    finally:
        tipline.ami.action("Setvar", ("Variable", "BN_MELDKAMER_DIAL"), ("Value", ANSWERS))
    assert (second.dial_status, second.routed_to, second.action_id) == (
        "NOANSWER",
        NEVER_ANSWERS,
        action["id"],
    )
    # The centralist's phone is the meldkamer's now: rung once.
    assert legs(tipline, second) == [(NEVER_ANSWERS, "NOANSWER", False)]
    assert second.talk_seconds is None
    assert second.recording_path and second.recording_path.startswith(RECORDINGS)
    assert (tipline.asterisk.chroot / second.recording_path.lstrip("/")).is_file()


def test_after_the_close_the_same_caller_goes_to_the_meldkamer(tipline):
    centralist_phone(tipline, "Local/answer@test-endpoints/n")
    register(tipline, "+31612345678")
    action = launch(tipline)
    tipline.call("centralist", "POST", f"/api/v1/actions/{action['id']}/close", json={"outcome": "none"})
    dial_in(tipline, "<0612345678>", hold=4)
    [tip] = finished_tips(tipline, 1)
    assert (tip.action_id, tip.routed_to, tip.dial_status) == (None, ANSWERS, "ANSWER")


@pytest.mark.parametrize("tipline", ["sql", "redis"], indirect=True)
def test_fifty_simultaneous_calls_are_all_routed_and_logged(tipline):
    centralist_phone(tipline, ANSWERS)
    phones = [f"+316100000{n:02d}" for n in range(50)]
    for phone in phones:
        register(tipline, phone)
    action = launch(tipline)
    for phone in phones:
        dial_in(tipline, f"<0{phone[3:]}>", hold=8)
    tips = finished_tips(tipline, 50, timeout=120)
    assert sorted(t.caller_number for t in tips) == phones
    assert {(t.action_id, t.matched_by, t.dial_status) for t in tips} == {
        (action["id"], MatchedBy.caller_id, "ANSWER")
    }


def test_when_the_ivr_is_down_the_caller_still_reaches_the_meldkamer(tipline):
    events = RawAMI(tipline.asterisk.ami_host, tipline.asterisk.ami_port, timeout=30)
    assert (
        events.login(tipline.asterisk.ami_user, tipline.asterisk.ami_secret, "call,dialplan")["Response"]
        == "Success"
    )
    tipline.ami.action("Setvar", ("Variable", "BN_IVR"), ("Value", "agi://127.0.0.1:1"))  # nothing listens
    try:
        dial_in(tipline, "<0612345678>", hold=6)
        events.wait_event("Newexten", Context="agi_fail", Application="Playback", AppData="im-sorry")
        assert events.wait_event("DialEnd", DestChannel=ANSWERS)["DialStatus"] == "ANSWER"
    finally:
        events.close()
