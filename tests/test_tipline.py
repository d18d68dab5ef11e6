"""The tip line: routing rules (pure), the route cache (real Redis), and the FastAGI server with its
handlers over a real socket, Asterisk's side played from the recorded transcripts' shapes."""

import os
import signal
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
from polling import until
from sqlalchemy import select

from gateway.storage.models import MatchedBy, Tip, TipLeg
from gateway.tipline.lookup import RouteCache, sync_action
from gateway.tipline.routing import (
    OpenAlert,
    Route,
    Step,
    caller_number,
    route_by_caller,
    route_by_code,
    route_by_menu,
)
from gateway.tipline.tips import parse_legs, talk_seconds
from gateway.tipline.tipstream import TipStream, TipStreamWriter
from ivr import simulator as agi_client
from ivr.context import IvrContext
from ivr.handlers import registry
from ivr.server import FastAGIServer

# Relative to now: route-cache entries expire at the action's expiry (an hour after, at most).
T0 = datetime.now(UTC).replace(microsecond=0)
A = OpenAlert(1, "4821", "PJSIP/4021@mk", T0)
B = OpenAlert(2, "3317", "PJSIP/4022@mk", T0 + timedelta(minutes=5))
MELDKAMER = "PJSIP/meldkamer@mk"


# --- routing, pure ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, pres, expected",
    [
        ("0612345678", "0", "+31612345678"),
        ("+31612345678", None, "+31612345678"),
        ("0031612345678", "0", "+31612345678"),
        ("+32470123456", "0", "+32470123456"),
        ("004915112345678", "0", "+4915112345678"),
        ('"0612345678"', "0", "+31612345678"),
        ("anonymous", "0", None),
        ("", "0", None),
        ("unknown", None, None),
        ("0612345678", "32", None),  # presentation restricted: treat as withheld
        ("0612345678", "67", None),
        ("12", "0", None),
        ("\x00garbage", "x", None),
    ],
)
def test_caller_numbers_are_normalised_to_e164(raw, pres, expected):
    assert caller_number(raw, pres) == expected


def test_a_caller_reached_by_one_open_action_goes_to_its_centralist():
    route = route_by_caller("+31612345678", [A], any_open=True)
    assert (route.step, route.matched_by, route.alert) == (Step.centralist, MatchedBy.caller_id, A)


def test_a_caller_reached_by_several_gets_a_menu_most_recent_first():
    route = route_by_caller("+31612345678", [A, B], any_open=True)
    assert route.step is Step.menu and route.choices == (B, A) and route.alert == B
    assert route_by_menu(route, "2").alert == A
    assert route_by_menu(route, "1").alert == B
    assert route_by_menu(route, "").alert == B  # no key: the most recent
    assert route_by_menu(route, "7").alert == B


def test_unknown_and_withheld_callers_are_asked_for_the_code_only_when_an_action_is_open():
    assert route_by_caller(None, [], any_open=True).step is Step.ask_code
    assert route_by_caller("+31699999999", [], any_open=True).step is Step.ask_code
    assert route_by_caller(None, [], any_open=False).step is Step.meldkamer


def test_codes():
    codes = {"4821": A, "3317": B}
    assert route_by_code("4821#", codes) == Route(Step.centralist, MatchedBy.action_code, A)
    assert route_by_code("1234", codes) is None
    assert route_by_code("", codes) is None


# --- legs and talk time, pure ------------------------------------------------------------------------


def test_the_talk_time_counts_from_the_answer_of_the_phone_put_through():
    # As dialplans/lib.conf writes them: the centralist busy, then the meldkamer answers after 3.2 s
    # of ringing and talks 5.1 s; the caller had been on the line for 40 s of prompts before.
    legs = parse_legs(
        "PJSIP/4021@mk|BUSY|1796640040.000||1796640040.250^"
        "PJSIP/meldkamer@mk|ANSWER|1796640040.250|1796640043.450|1796640048.550^"
    )
    assert [(leg.dialed, leg.dial_status, leg.talk_seconds) for leg in legs] == [
        ("PJSIP/4021@mk", "BUSY", None),
        ("PJSIP/meldkamer@mk", "ANSWER", 5),
    ]
    assert legs[1].answered_at == datetime(2026, 12, 7, 10, 40, 43, 450000, tzinfo=UTC)
    assert talk_seconds(legs) == 5
    assert talk_seconds(parse_legs("PJSIP/4021@mk|NOANSWER|1796640040.000||1796640060.000^")) is None
    assert parse_legs("") == ()


@pytest.mark.parametrize(
    "text", ["x|ANSWER|1^", "|ANSWER|1|2|3^", "x|ANSWER|soon||3^", "x|ANSWER|1|2|3|4^", "x||1||3^"]
)
def test_legs_the_dialplan_did_not_write_are_refused(text):
    with pytest.raises(ValueError):
        parse_legs(text)


# --- the route cache on a real Redis ---------------------------------------------------------------


def test_the_route_cache_remembers_forgets_and_says_when_it_cannot_tell(redis_url, key_prefix):
    cache = RouteCache(redis_url, prefix=key_prefix)
    assert cache.alerts_for("+31612345678") is None  # never filled: ask SQL
    cache.remember(A, ["+31612345678", "+31600000001"], T0 + timedelta(hours=2))
    cache.remember(B, ["+31612345678"], T0 + timedelta(hours=2))
    cache.mark_complete()
    assert sorted(a.action_id for a in cache.alerts_for("+31612345678")) == [1, 2]
    assert cache.alerts_for("+31699999999") == []  # complete: a miss means no alert
    assert cache.open_by_code() == {"4821": A, "3317": B}
    cache.forget(A, ["+31612345678", "+31600000001"])
    assert cache.alerts_for("+31612345678") == [B]
    assert cache.alerts_for("+31600000001") == []
    cache.close()


def test_a_cache_that_cannot_reach_redis_falls_back():
    cache = RouteCache("redis://127.0.0.1:1/0")  # nothing listens there
    cache.remember(A, ["+31612345678"], T0)  # logged, not raised
    assert cache.alerts_for("+31612345678") is None and cache.open_by_code() is None


# --- the FastAGI server with real handlers ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=["redis", "sql"])
def ivr(request, api, redis_url, key_prefix):
    """The FastAGI server on a free port, over the api fixture's database: with Redis as in
    production (route cache, tip stream, and a tip writer that `flush_tips` runs until the stream
    is empty), or SQL only (lookups and the tip writer thread)."""
    cache = stream = writer = None
    if request.param == "redis":
        cache, stream = RouteCache(redis_url, prefix=key_prefix), TipStream(redis_url, prefix=key_prefix)
        writer = TipStreamWriter(stream, api.sessions, "test-writer")
    ctx = IvrContext(api.sessions, cache, stream=stream)
    server = FastAGIServer(("127.0.0.1", free_port()), registry(ctx))
    server.start_in_background()
    api.ivr_port, api.ivr_ctx, api.ivr_server, api.tip_writer = server.server_address[1], ctx, server, writer

    def flush_tips():
        ctx.tips.flush()
        if writer is not None:
            writer.drain()

    api.flush_tips = flush_tips
    yield api
    server.shutdown()
    server.server_close()
    ctx.close()
    if writer is not None:
        writer.close()


def register(api, phone: str) -> None:
    api.register(phone)


def launch(api, description="Man met rode jas.") -> dict:
    opened = api.launch(description)
    if api.ivr_ctx.cache is not None:  # what the API does after a launch when Redis is configured
        with api.sessions() as s:
            sync_action(api.ivr_ctx.cache, s, opened["id"])
            api.ivr_ctx.cache.rebuild(s)
    return opened


def tip(api, call_id: str) -> Tip:
    api.flush_tips()
    with api.sessions() as s:
        return s.scalars(select(Tip).where(Tip.call_id == call_id)).one()


def hangup(api, call_id: str, *args: str, extra: str = "") -> None:
    """The dialplan's hangup handler: its five arguments, the token the call's first AGI set, and
    the legs (BN_LEGS, dialplans/lib.conf) when given."""
    env = agi_client.env_block("tipline_hangup", uniqueid=call_id)
    args = (*args, *[""] * (5 - len(args)), api.ivr_ctx.call_token(call_id), extra)
    env.update({f"agi_arg_{i}": a for i, a in enumerate(args, 1)})
    agi_client.call(api.ivr_port, env)


def tipline(**kw) -> dict:
    """The environment of a call to the tip line, with the dialplan's AGI arguments."""
    return agi_client.env_block("tipline", agi_arg_1=MELDKAMER, agi_arg_2="/var/lib/burgernet/prompts", **kw)


def test_a_participant_who_received_the_action_reaches_its_centralist(ivr):
    register(ivr, "+31612345678")
    action = launch(ivr)
    commands = agi_client.call(ivr.ivr_port, tipline(callerid="0612345678", uniqueid="c1.1"))
    got = agi_client.variables(commands)
    assert got["BN_DIAL"] == "PJSIP/4021@mk"
    # The call's token (for its hangup record), then the decision before anything else.
    assert commands[0].startswith('SET VARIABLE "BN_CALL_TOKEN"') and commands[1].startswith(
        'SET VARIABLE "BN_DIAL"'
    )
    t = tip(ivr, "c1.1")
    assert (t.matched_by, t.action_id, t.caller_number, t.routed_to) == (
        MatchedBy.caller_id,
        action["id"],
        "+31612345678",
        "PJSIP/4021@mk",
    )
    assert t.participant_id is not None and t.ended_at is None

    hangup(ivr, "c1.1", "ANSWER", "42", "PJSIP/4021@mk", "", "")
    t = tip(ivr, "c1.1")
    assert (t.dial_status, t.talk_seconds, t.recording_path) == ("ANSWER", 42, None) and t.ended_at


def test_a_withheld_caller_keys_the_code(ivr):
    action = launch(ivr)
    answer = agi_client.keys("9999", action["action_code"])
    commands = agi_client.call(ivr.ivr_port, tipline(callerid="anonymous", uniqueid="c2.1"), answer)
    assert agi_client.variables(commands)["BN_DIAL"] == "PJSIP/4021@mk"
    assert sum(c.startswith("GET DATA") for c in commands) == 2
    assert any("tipline-wrong-code" in c for c in commands)
    t = tip(ivr, "c2.1")
    assert (t.matched_by, t.action_id, t.caller_number) == (MatchedBy.action_code, action["id"], None)


def test_the_code_of_an_action_launched_while_the_caller_is_asked_works(ivr):
    launch(ivr, "Eerste actie.")
    later: dict = {}
    keyed = agi_client.keys()

    def answer(command: str) -> str:
        if command.startswith("GET DATA") and not later:  # the second action opens now
            later.update(launch(ivr, "Tweede actie."))
            return f"200 result={later['action_code']}"
        return keyed(command)

    commands = agi_client.call(ivr.ivr_port, tipline(callerid="anonymous", uniqueid="c2.2"), answer)
    assert agi_client.variables(commands)["BN_DIAL"] == "PJSIP/4021@mk"
    assert sum(c.startswith("GET DATA") for c in commands) == 1
    assert (tip(ivr, "c2.2").matched_by, tip(ivr, "c2.2").action_id) == (MatchedBy.action_code, later["id"])


def test_three_wrong_codes_go_to_the_meldkamer(ivr):
    launch(ivr)
    answer = agi_client.keys("1", "22", "333")
    commands = agi_client.call(ivr.ivr_port, tipline(callerid="", uniqueid="c3.1"), answer)
    assert sum(c.startswith("GET DATA") for c in commands) == 3
    assert agi_client.variables(commands)["BN_DIAL"] == MELDKAMER
    t = tip(ivr, "c3.1")
    assert (t.matched_by, t.action_id, t.routed_to) == (MatchedBy.none, None, MELDKAMER)


def test_a_caller_reached_by_two_open_actions_chooses_from_the_menu(ivr):
    register(ivr, "+31612345678")
    first = launch(ivr, "Eerste actie.")
    launch(ivr, "Tweede actie.")
    commands = agi_client.call(ivr.ivr_port, tipline(uniqueid="c4.1"), agi_client.keys("2"))
    assert any("tipline-menu" in c for c in commands)
    t = tip(ivr, "c4.1")
    assert (t.matched_by, t.action_id) == (
        MatchedBy.caller_id,
        first["id"],
    )  # 2 = the one before the most recent


def test_after_the_close_the_same_caller_goes_to_the_meldkamer(ivr):
    register(ivr, "+31612345678")
    action = launch(ivr)
    ivr.call("centralist", "POST", f"/api/v1/actions/{action['id']}/close", json={"outcome": "none"})
    if ivr.ivr_ctx.cache is not None:
        with ivr.sessions() as s:
            sync_action(ivr.ivr_ctx.cache, s, action["id"])
    commands = agi_client.call(ivr.ivr_port, tipline(uniqueid="c5.1"))
    assert agi_client.variables(commands)["BN_DIAL"] == MELDKAMER
    assert not any(c.startswith("GET DATA") for c in commands)  # no open action: nothing to ask
    assert tip(ivr, "c5.1").action_id is None


def test_nobody_answered_the_recording_is_attached(ivr):
    register(ivr, "+31612345678")
    launch(ivr)
    agi_client.call(ivr.ivr_port, tipline(uniqueid="c6.1"))
    recording = "/var/spool/asterisk/recording/burgernet/tip-c6.1"
    hangup(ivr, "c6.1", "NOANSWER", "", MELDKAMER, "HANGUP", recording)
    t = tip(ivr, "c6.1")
    assert (t.dial_status, t.routed_to, t.recording_path) == ("NOANSWER", MELDKAMER, recording + ".wav")


def test_the_server_survives_garbage_hangups_and_511(ivr):
    register(ivr, "+31612345678")
    launch(ivr)
    port = ivr.ivr_port
    # Garbage environment lines, bytes that are not UTF-8, no script name at all.
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"garbage\n\xff\xfe: \x00\nagi_network_script: no-such-handler\n\n")
        s.settimeout(5)
        assert s.recv(1000).startswith(b"VERBOSE")
    # The caller hangs up before the environment is complete.
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"agi_network: yes\nagi_network_script: tipline\n")
    # A bare HANGUP notice, then 511 for every command: the channel is dead.
    agi_client.call(
        port,
        tipline(uniqueid="c7.1"),
        lambda c: ["HANGUP", "511 Command Not Permitted on a dead channel or intercept routine"],
    )
    # A GET DATA the caller hangs up on (result=-1) while being asked for a code.
    agi_client.call(
        port,
        tipline(callerid="anonymous", uniqueid="c7.2"),
        lambda c: "200 result=-1" if c.startswith("GET DATA") else "200 result=1",
    )
    # Asterisk goes away in the middle of the session.
    agi_client.call(port, tipline(uniqueid="c7.3"), lambda c: None)
    # … and the server still routes the next call.
    commands = agi_client.call(port, tipline(uniqueid="c7.4"))
    assert agi_client.variables(commands)["BN_DIAL"] == "PJSIP/4021@mk"
    assert tip(ivr, "c7.2").matched_by is MatchedBy.none  # logged although the caller hung up
    assert ivr.ivr_server.stats.calls >= 6


def test_many_simultaneous_calls_are_all_routed_and_logged(ivr):
    register(ivr, "+31612345678")
    launch(ivr)
    results, barrier = {}, threading.Barrier(50)

    def one(n):
        barrier.wait()
        commands = agi_client.call(ivr.ivr_port, tipline(uniqueid=f"m{n}"))
        results[n] = agi_client.variables(commands).get("BN_DIAL")

    threads = [threading.Thread(target=one, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results.values()) == {"PJSIP/4021@mk"} and len(results) == 50
    ivr.flush_tips()
    with ivr.sessions() as s:
        assert len(s.scalars(select(Tip.id).where(Tip.call_id.like("m%"))).all()) == 50


def test_the_cache_answers_without_sql(ivr):
    if ivr.ivr_ctx.cache is None:
        pytest.skip("SQL-only variant")
    # An entry only in Redis (no such action in SQL): the IVR must route by it.
    ivr.ivr_ctx.cache.remember(
        OpenAlert(999, "5555", "PJSIP/cache-only@mk", T0), ["+31612345678"], T0 + timedelta(hours=2)
    )
    ivr.ivr_ctx.cache.mark_complete()
    commands = agi_client.call(ivr.ivr_port, tipline(uniqueid="c8.1"))
    assert agi_client.variables(commands)["BN_DIAL"] == "PJSIP/cache-only@mk"


def test_tips_reach_the_centralist_live(ivr):
    register(ivr, "+31612345678")
    action = launch(ivr)
    agi_client.call(ivr.ivr_port, tipline(uniqueid="live.1"))
    ivr.flush_tips()
    with ivr.client.stream(
        "GET", f"/api/v1/actions/{action['id']}/tips/stream", headers=ivr.as_("centralist")
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        event = next(line for line in lines if line.startswith("event:"))
        data = next(line for line in lines if line.startswith("data:"))
    assert event == "event: tip" and '"matched_by":"caller_id"' in data
    ivr.call("centralist", "GET", "/api/v1/actions/99999/tips/stream", expect=404)
    ivr.call("utrecht", "GET", f"/api/v1/actions/{action['id']}/tips/stream", expect=403)


def test_the_dutch_mobile_shortcut_agrees_with_phonenumbers():
    import random

    from gateway.phone import BadPhoneNumber, to_e164

    rng = random.Random(7)
    for _ in range(2000):
        raw = rng.choice(["06", "+316", "00316"]) + "".join(rng.choice("0123456789") for _ in range(8))
        try:
            expected = to_e164(raw)
        except BadPhoneNumber:
            expected = None
        assert caller_number(raw, "0") == expected, raw


def test_a_hangup_record_must_carry_its_calls_token(ivr):
    """Issue 17, defect 10: anyone reaching the IVR port rewrote a tip's end by its call id."""
    register(ivr, "+31612345678")
    launch(ivr)
    token = agi_client.variables(
        agi_client.call(ivr.ivr_port, tipline(callerid="0612345678", uniqueid="c9.1"))
    )["BN_CALL_TOKEN"]
    other = agi_client.variables(
        agi_client.call(ivr.ivr_port, tipline(callerid="0612345678", uniqueid="c9.2"))
    )["BN_CALL_TOKEN"]
    assert token != other
    forged = {
        "agi_arg_1": "FORGED",
        "agi_arg_2": "999",
        "agi_arg_3": "PJSIP/evil@x",
        "agi_arg_4": "",
        "agi_arg_5": "",
    }
    for claimed in (
        {},
        {"agi_arg_6": ""},
        {"agi_arg_6": "0" * 32},
        {"agi_arg_6": other},
        {"agi_arg_6": token.upper()},
    ):
        agi_client.call(
            ivr.ivr_port, {**agi_client.env_block("tipline_hangup", uniqueid="c9.1"), **forged, **claimed}
        )
    t = tip(ivr, "c9.1")
    assert (t.dial_status, t.talk_seconds, t.ended_at) == (None, None, None)  # untouched
    agi_client.call(
        ivr.ivr_port,
        {
            **agi_client.env_block("tipline_hangup", uniqueid="c9.1"),
            "agi_arg_1": "ANSWER",
            "agi_arg_2": "12",
            "agi_arg_3": "PJSIP/4021@mk",
            "agi_arg_4": "",
            "agi_arg_5": "",
            "agi_arg_6": token,
        },
    )
    t = tip(ivr, "c9.1")
    assert (t.dial_status, t.talk_seconds) == ("ANSWER", 12) and t.ended_at is not None


def test_the_hangup_records_every_leg_and_the_talk_time_from_the_answer(ivr):
    register(ivr, "+31612345678")
    launch(ivr)
    commands = agi_client.call(ivr.ivr_port, tipline(callerid="0612345678", uniqueid="legs.1"))
    assert agi_client.variables(commands)["BN_DIAL"] == "PJSIP/4021@mk"
    at = datetime.now(UTC).timestamp()
    hangup(
        ivr,
        "legs.1",
        "ANSWER",
        "",  # no talk time from the dialplan: Dial()'s ANSWEREDTIME counts from the caller's answer
        MELDKAMER,
        "",
        "",
        extra=(
            f"PJSIP/4021@mk|BUSY|{at:.3f}||{at + 0.2:.3f}^"
            f"{MELDKAMER}|ANSWER|{at + 0.2:.3f}|{at + 4.1:.3f}|{at + 9.2:.3f}^"
        ),
    )
    t = tip(ivr, "legs.1")
    assert (t.dial_status, t.routed_to, t.talk_seconds) == ("ANSWER", MELDKAMER, 5)
    with ivr.sessions() as s:
        legs = s.scalars(select(TipLeg).where(TipLeg.call_id == "legs.1").order_by(TipLeg.leg)).all()
    assert [(g.leg, g.dialed, g.dial_status, g.talk_seconds, g.answered_at is None) for g in legs] == [
        (1, "PJSIP/4021@mk", "BUSY", None, True),
        (2, MELDKAMER, "ANSWER", 5, False),
    ]
    assert abs(legs[1].answered_at.timestamp() - (at + 4.1)) < 0.01


def test_garbled_legs_still_end_the_tip(ivr):
    agi_client.call(ivr.ivr_port, tipline(callerid="0612345678", uniqueid="legs.2"))
    hangup(ivr, "legs.2", "ANSWER", "7", MELDKAMER, "", "", extra="PJSIP/x|ANSWER|then^")
    t = tip(ivr, "legs.2")
    assert (t.dial_status, t.talk_seconds) == ("ANSWER", 7) and t.ended_at is not None


def test_sigterm_lets_the_call_in_progress_finish_refuses_new_ones_and_exits_cleanly(api, db_url):
    """`burgernet ivr` as a process: SIGTERM while a caller is keying the code."""
    action = api.launch()
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": "", "ENVIRONMENT": "development"}
    ivr = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "ivr", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def connected() -> socket.socket | None:
            try:
                return socket.create_connection(("127.0.0.1", port), timeout=10)
            except ConnectionRefusedError:
                assert ivr.poll() is None, ivr.stdout.read()
                return None

        caller = until(connected, 30, f"the IVR to accept calls on port {port}", every=0.1)
        with caller:
            env_lines = [f"{k}: {v}" for k, v in tipline(callerid="anonymous", uniqueid="term.1").items()]
            caller.sendall(("\n".join(env_lines) + "\n\n").encode())
            commands = caller.makefile("rb")
            while not commands.readline().decode().startswith("GET DATA"):
                caller.sendall(b"200 result=1\n")  # SET VARIABLE (the call token) and the like
            ivr.send_signal(signal.SIGTERM)  # the caller is being asked for the code

            def refused() -> bool:  # the listening socket closes: a new call is refused
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                except ConnectionRefusedError:
                    return True
                return False

            until(refused, 10, "new calls refused after SIGTERM (still accepting them)")
            assert ivr.poll() is None  # the call in progress holds the process
            caller.sendall(f"200 result={action['action_code']}\n".encode())
            rest = []
            while line := commands.readline().decode():
                rest.append(line.strip())
                caller.sendall(b"200 result=1\n")
        assert agi_client.variables(rest)["BN_DIAL"] == "PJSIP/4021@mk"
        assert ivr.wait(20) == 0
    finally:
        if ivr.poll() is None:
            ivr.kill()
            ivr.wait()
    with api.sessions() as s:
        logged = s.scalars(select(Tip).where(Tip.call_id == "term.1")).one()
    assert (logged.action_id, logged.matched_by) == (action["id"], MatchedBy.action_code)
