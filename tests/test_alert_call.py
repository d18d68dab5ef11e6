"""Answered alert calls: the `alert_call` handler plays the action, offers 1 (again) and 2 (put
through, a tip), and records on the Message how far the participant listened.

First over a real socket with Asterisk's side played from the recorded transcripts' shapes (both
databases), then on the real Asterisk 22 with dialplans/alert.conf and espeak audio (PostgreSQL).
"""

import re
import time

import pytest
from polling import until
from sqlalchemy import select, update

from gateway.storage.models import (
    Bulletin,
    Centralist,
    Channel,
    MatchedBy,
    Message,
    MessageStatus,
    Tip,
    TipChannel,
)
from ivr import simulator as agi_client
from ivr.context import IvrContext
from ivr.handlers import registry
from ivr.handlers.alert_call import MAX_REPLAYS
from ivr.server import FastAGIServer

PHONE = "+31612345678"
MELDKAMER = "PJSIP/meldkamer@mk"
AUDIO = "/var/lib/burgernet/audio/bulletin-1-nl"
TWELVE_SECONDS = str(44 + 12 * 8000 * 2)  # the audio file's size in bytes: 12.0 s of 8 kHz 16-bit
END = "200 result=0 endpos=96000"  # STREAM FILE played all 12.0 s
NO_KEY = "200 result=0"  # WAIT FOR DIGIT timed out
DEAD = ["HANGUP", "511 Command Not Permitted on a dead channel or intercept routine"]


def key(digit: str, endpos: int | None = None) -> str:
    """A key pressed: during STREAM FILE (with endpos) or WAIT FOR DIGIT (without)."""
    return f"200 result={ord(digit)}" + (f" endpos={endpos}" if endpos is not None else "")


def register(api, phone: str = PHONE) -> None:
    api.register(phone, channel="voice")


def launch(api, description: str = "Man met rode jas.") -> tuple[dict, Message]:
    """An action with a voice alert to PHONE: the action and its Message row."""
    opened = api.launch(description, channels=("voice",))
    with api.sessions() as s:
        message = s.scalars(
            select(Message).where(Message.action_id == opened["id"], Message.phone == PHONE)
        ).one()
    assert message.channel is Channel.voice
    return opened, message


def message(api, message_id: int) -> Message:
    with api.sessions() as s:
        return s.get(Message, message_id)


# --- the handler over a real socket ------------------------------------------------------------


class AsteriskSide:
    """Asterisk's answers for one alert call: the channel variables, then scripted STREAM FILE and
    WAIT FOR DIGIT results in turn (afterwards: played to the end / no key)."""

    def __init__(
        self, message_id, audio=AUDIO, streams=(), digits=(), size=TWELVE_SECONDS, status="200 result=6"
    ):
        self.vars = {"BN_MESSAGE_ID": str(message_id), "BN_AUDIO": audio}
        self.streams, self.digits, self.size, self.status = list(streams), list(digits), size, status

    def __call__(self, command: str):
        if command.startswith("GET VARIABLE "):
            value = self.vars.get(command.split()[2].strip('"'), "")
            return f"200 result=1 ({value})" if value else "200 result=0"
        if command.startswith("GET FULL VARIABLE"):
            return f"200 result=1 ({self.size})"
        if command.startswith("STREAM FILE"):
            return self.streams.pop(0) if self.streams else END
        if command.startswith("WAIT FOR DIGIT"):
            return self.digits.pop(0) if self.digits else NO_KEY
        if command.startswith("CHANNEL STATUS"):
            return self.status
        return "200 result=1"


@pytest.fixture
def ivr(api):
    """The FastAGI server on a free port over the api fixture's database, with one voice alert."""
    ctx = IvrContext(api.sessions, cache=None)
    server = FastAGIServer(("127.0.0.1", 0), registry(ctx))
    server.start_in_background()
    api.ivr_port, api.ivr_ctx, api.ivr_server = server.server_address[1], ctx, server
    register(api)
    api.action, api.message = launch(api)
    yield api
    server.shutdown()
    server.server_close()
    ctx.tips.close()


def answered(
    api, side: AsteriskSide, uniqueid: str = "alert.1", script: str = "alert_call"
) -> tuple[list[str], dict]:
    """One answered alert call; the commands sent and the variables set. Writes are flushed."""
    args = {"agi_arg_1": MELDKAMER} if script == "alert_call" else {}
    env = agi_client.env_block(script, uniqueid=uniqueid, agi_context="alert-call", **args)
    commands = agi_client.call(api.ivr_port, env, side)
    api.ivr_ctx.tips.flush()
    return commands, agi_client.variables(commands)


def streams(commands: list[str]) -> list[str]:
    return [c for c in commands if c.startswith("STREAM FILE")]


def test_a_participant_who_listens_to_the_end(ivr):
    commands, got = answered(ivr, AsteriskSide(ivr.message.id))
    assert streams(commands) == [f'STREAM FILE {AUDIO} "12" 0']
    assert any(c.startswith("WAIT FOR DIGIT 5000") for c in commands)
    assert got == {"BN_ALERT_RESULT": "listened"}  # no BN_DIAL: the dialplan hangs up
    m = message(ivr, ivr.message.id)
    assert (m.status, m.detail) == (MessageStatus.answered, "listened to the end") and m.final_at
    with ivr.sessions() as s:
        assert s.scalars(select(Tip)).all() == []


def test_1_plays_it_again_at_most_three_times(ivr):
    commands, got = answered(ivr, AsteriskSide(ivr.message.id, streams=[key("1", 16000), END]))
    assert len(streams(commands)) == 2 and got["BN_ALERT_RESULT"] == "listened"
    assert message(ivr, ivr.message.id).detail == "listened to the end, replayed 1 time"

    # 1 after every playback: the message plays 1 + MAX_REPLAYS times, then the call ends.
    commands, got = answered(ivr, AsteriskSide(ivr.message.id, digits=[key("1")] * 10), uniqueid="alert.2")
    assert len(streams(commands)) == 1 + MAX_REPLAYS and got == {"BN_ALERT_RESULT": "listened"}
    assert message(ivr, ivr.message.id).detail == f"listened to the end, replayed {MAX_REPLAYS} times"


def test_2_puts_the_participant_through_to_the_centralist_and_logs_a_tip(ivr):
    commands, got = answered(ivr, AsteriskSide(ivr.message.id, digits=[key("2")]))
    token = got.pop("BN_CALL_TOKEN")  # for the tip's hangup handler
    assert got == {"BN_DIAL": "PJSIP/4021@mk", "BN_ALERT_RESULT": "dial"}
    assert commands[-2].startswith('SET VARIABLE "BN_DIAL"')  # the decision first, then the result
    m = message(ivr, ivr.message.id)
    assert (m.status, m.detail) == (MessageStatus.answered, "pressed 2 (put through); listened to the end")
    with ivr.sessions() as s:
        tip = s.scalars(select(Tip)).one()
    assert (tip.channel, tip.matched_by, tip.caller_number, tip.action_id, tip.routed_to, tip.call_id) == (
        TipChannel.call,
        MatchedBy.caller_id,
        PHONE,
        ivr.action["id"],
        "PJSIP/4021@mk",
        "alert.1",
    )
    assert tip.participant_id is not None and tip.ended_at is None

    # The dialplan's hangup handler finishes the tip as on the tip line.
    env = agi_client.env_block(
        "tipline_hangup",
        uniqueid="alert.1",
        agi_arg_1="ANSWER",
        agi_arg_2="31",
        agi_arg_3="PJSIP/4021@mk",
        agi_arg_4="",
        agi_arg_5="",
        agi_arg_6=token,
    )
    agi_client.call(ivr.ivr_port, env)
    ivr.ivr_ctx.tips.flush()
    with ivr.sessions() as s:
        tip = s.scalars(select(Tip)).one()
    assert (tip.dial_status, tip.talk_seconds) == ("ANSWER", 31) and tip.ended_at


def test_2_during_the_message_records_how_far_it_played(ivr):
    commands, got = answered(ivr, AsteriskSide(ivr.message.id, streams=[key("2", 57600)]))
    assert got["BN_DIAL"] == "PJSIP/4021@mk" and not any(c.startswith("WAIT FOR DIGIT") for c in commands)
    assert message(ivr, ivr.message.id).detail == "pressed 2 (put through); listened 7.2 s of 12.0 s"


def test_2_after_the_action_closed_goes_to_the_meldkamer(ivr):
    ivr.call("centralist", "POST", f"/api/v1/actions/{ivr.action['id']}/close", json={"outcome": "none"})
    _, got = answered(ivr, AsteriskSide(ivr.message.id, digits=[key("2")]))
    assert got["BN_DIAL"] == MELDKAMER
    with ivr.sessions() as s:
        tip = s.scalars(select(Tip)).one()
    assert (tip.action_id, tip.routed_to) == (ivr.action["id"], MELDKAMER)


def test_other_keys_and_a_hangup_mid_message_are_recorded(ivr):
    _, got = answered(ivr, AsteriskSide(ivr.message.id, digits=[key("#")]))
    assert got == {"BN_ALERT_RESULT": "listened"}

    # The participant hangs up after 7.2 s of the second playback (transcript: result=-1 with
    # endpos, then HANGUP and 511 for the next command).
    hangups = ivr.ivr_server.stats.hangups
    side = AsteriskSide(ivr.message.id, streams=[key("1", 8000), "200 result=-1 endpos=57600"], status=DEAD)
    commands, got = answered(ivr, side, uniqueid="alert.2")
    assert len(streams(commands)) == 2 and got == {}
    m = message(ivr, ivr.message.id)
    assert (m.status, m.detail) == (MessageStatus.answered, "listened 7.2 s of 12.0 s, replayed 1 time")
    assert ivr.ivr_server.stats.hangups == hangups + 1

    # Without a .wav to measure (STAT empty) the length is left out.
    answered(ivr, AsteriskSide(ivr.message.id, streams=[key("2", 24000)], size=""), uniqueid="alert.3")
    assert message(ivr, ivr.message.id).detail == "pressed 2 (put through); listened 3.0 s"


def test_missing_audio_fails_the_message_and_ends_the_call(ivr):
    # Asterisk's answer for a file it cannot open (fastagi-session-local-originate.txt), channel up.
    side = AsteriskSide(ivr.message.id, streams=["200 result=-1 endpos=0"], size="")
    commands, got = answered(ivr, side)
    assert got == {"BN_ALERT_RESULT": "audio-missing"} and len(streams(commands)) == 1
    m = message(ivr, ivr.message.id)
    assert (m.status, m.detail) == (MessageStatus.failed, "audio missing") and m.final_at

    _, got = answered(ivr, AsteriskSide(ivr.message.id, audio=""), uniqueid="alert.2")  # no BN_AUDIO at all
    assert got == {"BN_ALERT_RESULT": "audio-missing"}
    with ivr.sessions() as s:
        assert s.scalars(select(Tip)).all() == []


@pytest.mark.parametrize(
    "raw", ["", "abc", "12abc", "-1", "0", "1e3", "99999999", "9" * 40, "١٢", "1 OR 1=1"]
)
def test_a_garbage_message_id_ends_the_call_cleanly(ivr, raw):
    commands, got = answered(ivr, AsteriskSide(raw))
    assert got == {"BN_ALERT_RESULT": "unknown-message"} and streams(commands) == []
    assert message(ivr, ivr.message.id).status is MessageStatus.queued  # nothing touched
    assert ivr.ivr_server.stats.failures == 0
    # … and the server still plays the next call.
    commands, _ = answered(ivr, AsteriskSide(ivr.message.id), uniqueid="alert.2")
    assert len(streams(commands)) == 1


def test_an_answering_machine_gets_the_message_once_without_a_menu(ivr):
    commands, got = answered(ivr, AsteriskSide(ivr.message.id), script="alert_voicemail")
    assert streams(commands) == [f'STREAM FILE {AUDIO} "" 0']  # no escape keys
    assert not any(c.startswith("WAIT FOR DIGIT") for c in commands)
    assert got == {"BN_ALERT_RESULT": "voicemail"}
    m = message(ivr, ivr.message.id)
    assert (m.status, m.detail) == (MessageStatus.answered, "voicemail: message left") and m.final_at

    # The machine hangs up after 4.1 s (result=-1 with endpos, then HANGUP and 511).
    side = AsteriskSide(ivr.message.id, streams=["200 result=-1 endpos=32800"], status=DEAD)
    commands, got = answered(ivr, side, uniqueid="alert.2", script="alert_voicemail")
    assert len(streams(commands)) == 1 and got == {}
    assert message(ivr, ivr.message.id).detail == "voicemail: cut off after 4.1 s of 12.0 s"


def test_an_answering_machine_and_missing_audio_or_an_unknown_message(ivr):
    side = AsteriskSide(ivr.message.id, streams=["200 result=-1 endpos=0"], size="")
    _, got = answered(ivr, side, script="alert_voicemail")
    assert got == {"BN_ALERT_RESULT": "audio-missing"}
    assert (message(ivr, ivr.message.id).status, message(ivr, ivr.message.id).detail) == (
        MessageStatus.failed,
        "audio missing",
    )
    commands, got = answered(ivr, AsteriskSide("abc"), uniqueid="alert.2", script="alert_voicemail")
    assert got == {"BN_ALERT_RESULT": "unknown-message"} and streams(commands) == []


# --- on the real Asterisk 22 ---------------------------------------------------------------------

postgresql_only = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

ANSWERS = "Local/answer@test-endpoints"
NEVER_ANSWERS = "Local/noanswer@test-endpoints"
AUDIO_DIR = "/var/lib/burgernet/audio"


@pytest.fixture
def alerts(api, asterisk):
    """dialplans/alert.conf pointed at a FastAGI server on the host, a voice alert to PHONE and its
    espeak audio in the chroot, and an AMI connection that sees call, dialplan and AGI events."""
    from asterisk_harness import RawAMI

    from gateway.tts import AudioCache, make_engines

    ctx = IvrContext(api.sessions, cache=None)
    server = FastAGIServer(("127.0.0.1", 0), registry(ctx))
    server.start_in_background()
    ami = RawAMI(asterisk.ami_host, asterisk.ami_port, timeout=60)
    assert ami.login(asterisk.ami_user, asterisk.ami_secret)["Response"] == "Success"
    events = RawAMI(asterisk.ami_host, asterisk.ami_port, timeout=60)
    assert events.login(asterisk.ami_user, asterisk.ami_secret, "call,dialplan,agi")["Response"] == "Success"
    for name, value in {
        "BN_IVR": f"agi://127.0.0.1:{server.server_address[1]}",
        "BN_MELDKAMER_DIAL": ANSWERS,
        "BN_RING_SECONDS": "3",
        "BN_AMD": "no",  # [test-endpoints] answer is silent; the AMD tests turn it on
    }.items():
        assert ami.action("Setvar", ("Variable", name), ("Value", value))["Response"] == "Success"
    with api.sessions() as s:  # the centralist's phone answers (not the meldkamer's string)
        s.execute(update(Centralist).values(dial_string=f"{ANSWERS}/n"))
        s.commit()
    register(api)
    api.action, api.message = launch(api)
    with api.sessions() as s:
        bulletin = s.get(Bulletin, api.message.bulletin_id)
    cache = AudioCache(asterisk.chroot / AUDIO_DIR.lstrip("/"), engines=make_engines("espeak"))
    api.audio = cache.ensure(bulletin.id, bulletin.spoken_text)
    api.audio_name = f"{AUDIO_DIR}/{api.audio.path.with_suffix('').name}"  # as Asterisk sees it
    api.ami, api.events, api.asterisk, api.ivr_ctx = ami, events, asterisk, ctx
    yield api
    ami.action("Hangup", ("Channel", "/^Local/"))
    ami.close()
    events.close()
    server.shutdown()
    server.server_close()
    ctx.tips.close()


def call_participant(api, audio: str | None = None, phone: str = ANSWERS) -> str:
    """The voice worker's Originate: the participant's phone ([test-endpoints] answer, on the line
    for a minute) answers and enters [alert-call]. Returns the alert channel (the ;1 side)."""
    response = api.ami.action(
        "Originate",
        ("Channel", phone),
        ("Context", "alert-call"),
        ("Exten", "s"),
        ("Priority", "1"),
        ("Variable", f"BN_MESSAGE_ID={api.message.id}"),
        ("Variable", f"BN_AUDIO={audio or api.audio_name}"),
        ("Variable", "HOLD=60"),
        ("Async", "true"),
    )
    assert response["Response"] == "Success", response
    return api.events.wait_event("Newexten", Context="alert-call", Exten="s", Application="NoOp")["Channel"]


def next_playback(api, channel: str) -> dict:
    return api.events.wait_event("AGIExecStart", Channel=channel, Command="STREAM FILE")


def press(api, channel: str, digit: str) -> None:
    """The participant keys `digit`: DTMF sent from the phone's side of the Local channel."""
    phone_side = channel[: -len(";1")] + ";2"
    response = api.ami.action("PlayDTMF", ("Channel", phone_side), ("Digit", digit), ("Duration", "250"))
    assert response["Response"] == "Success", response


def final_message(api, timeout: float = 60) -> Message:
    """Wait (bounded) until the IVR recorded the call's outcome on the Message."""

    def recorded() -> Message | None:
        m = message(api, api.message.id)
        return m if m.final_at is not None else None

    return until(
        recorded, timeout, lambda: f"the call's outcome; Asterisk log:\n{api.asterisk._log_tail()}", every=0.2
    )


def finished_tip(api, timeout: float = 60) -> Tip:
    def finished() -> Tip | None:
        with api.sessions() as s:
            return s.scalars(select(Tip).where(Tip.ended_at.is_not(None))).one_or_none()

    return until(
        finished, timeout, lambda: f"a finished tip; Asterisk log:\n{api.asterisk._log_tail()}", every=0.2
    )


def events_until_hangup(api, channel: str) -> list[dict]:
    seen = []
    while True:
        event = api.events.read_message()
        seen.append(event)
        if event.get("Event") == "Hangup" and event.get("Channel") == channel:
            return seen


@postgresql_only
def test_real_asterisk_no_key_listens_to_the_end(alerts):
    assert 3 < alerts.audio.seconds < 40
    channel = call_participant(alerts)
    start = next_playback(alerts, channel)
    assert start["Command"] == f'STREAM FILE {alerts.audio_name} "12" 0'
    seen = events_until_hangup(alerts, channel)  # the dialplan hangs up after the IVR
    assert not any(e.get("Context") == "agi_fail" for e in seen)
    assert not any(e.get("Event") == "DialBegin" and e.get("Channel") == channel for e in seen)
    m = final_message(alerts)
    assert (m.status, m.detail) == (MessageStatus.answered, "listened to the end")


@postgresql_only
def test_real_asterisk_1_replays_and_a_hangup_records_how_far(alerts):
    channel = call_participant(alerts)
    next_playback(alerts, channel)
    press(alerts, channel, "1")
    next_playback(alerts, channel)  # the second STREAM FILE: played again from the start
    time.sleep(2)
    alerts.ami.action("Hangup", ("Channel", channel))  # the participant hangs up mid-message
    m = final_message(alerts)
    assert m.status is MessageStatus.answered
    match = re.fullmatch(r"listened (\d+\.\d) s of (\d+\.\d) s, replayed 1 time", m.detail)
    assert match, m.detail
    heard, total = float(match[1]), float(match[2])
    assert 1 <= heard < total and abs(total - alerts.audio.seconds) < 0.2


@postgresql_only
def test_real_asterisk_2_puts_the_participant_through_and_logs_the_tip(alerts):
    channel = call_participant(alerts)
    next_playback(alerts, channel)
    press(alerts, channel, "2")
    dial_end = alerts.events.wait_event("DialEnd", Channel=channel)
    assert dial_end["DestChannel"].startswith(ANSWERS) and dial_end["DialStatus"] == "ANSWER"
    alerts.ami.action("Hangup", ("Channel", channel))
    tip = finished_tip(alerts)
    assert (tip.matched_by, tip.action_id, tip.caller_number) == (
        MatchedBy.caller_id,
        alerts.action["id"],
        PHONE,
    )
    assert (tip.routed_to, tip.dial_status) == (f"{ANSWERS}/n", "ANSWER")
    m = final_message(alerts)
    assert m.status is MessageStatus.answered and m.detail.startswith("pressed 2 (put through); listened ")


@postgresql_only
def test_real_asterisk_an_unanswered_centralist_falls_back_to_the_meldkamer(alerts):
    with alerts.sessions() as s:
        s.execute(update(Centralist).values(dial_string=NEVER_ANSWERS))
        s.commit()
    channel = call_participant(alerts)
    next_playback(alerts, channel)
    press(alerts, channel, "2")
    assert alerts.events.wait_event("DialEnd", Channel=channel)["DialStatus"] == "NOANSWER"
    assert alerts.events.wait_event("DialEnd", Channel=channel)["DialStatus"] == "ANSWER"
    alerts.ami.action("Hangup", ("Channel", channel))
    tip = finished_tip(alerts)
    assert (tip.routed_to, tip.dial_status, tip.action_id) == (ANSWERS, "ANSWER", alerts.action["id"])


@postgresql_only
def test_real_asterisk_missing_audio_fails_the_message_and_hangs_up(alerts):
    channel = call_participant(alerts, audio=f"{AUDIO_DIR}/no-such-bulletin-nl")
    seen = events_until_hangup(alerts, channel)
    assert not any(e.get("Context") == "agi_fail" for e in seen)  # no apology, no meldkamer
    m = final_message(alerts)
    assert (m.status, m.detail) == (MessageStatus.failed, "audio missing")


@postgresql_only
def test_real_asterisk_when_the_ivr_is_down_the_participant_is_not_left_in_silence(alerts):
    alerts.ami.action("Setvar", ("Variable", "BN_IVR"), ("Value", "agi://127.0.0.1:1"))  # nothing listens
    channel = call_participant(alerts)
    alerts.events.wait_event("Newexten", Channel=channel, Context="agi_fail", AppData="im-sorry")
    assert alerts.events.wait_event("DialEnd", Channel=channel)["DialStatus"] == "ANSWER"


# --- answering-machine detection on the real Asterisk ---------------------------------------------


@pytest.fixture(scope="module")
def phone_sounds(asterisk) -> dict[str, float]:
    """The far sides' audio (tests/phone_sounds.py): seconds until the machine's beep ended."""
    from phone_sounds import write_phone_sounds

    return {"machine": write_phone_sounds(asterisk.chroot)}


@postgresql_only
def test_real_asterisk_an_answering_machine_gets_the_message_after_the_beep(alerts, phone_sounds):
    alerts.ami.action("Setvar", ("Variable", "BN_AMD"), ("Value", "yes"))
    started = time.monotonic()
    channel = call_participant(alerts, phone="Local/machine@test-endpoints")
    assert alerts.events.wait_event("VarSet", Channel=channel, Variable="AMDSTATUS")["Value"] == "MACHINE"
    assert alerts.events.wait_event("VarSet", Channel=channel, Variable="WAITSTATUS")["Value"] == "SILENCE"
    start = next_playback(alerts, channel)
    assert time.monotonic() - started > phone_sounds["machine"]  # not before the beep
    assert start["Command"] == f'STREAM FILE {alerts.audio_name} "" 0'  # once, no menu
    seen = events_until_hangup(alerts, channel)
    assert not any(
        e.get("Event") == "AGIExecStart" and e.get("Command", "").startswith("STREAM FILE") for e in seen
    )
    m = final_message(alerts)
    assert (m.status, m.detail) == (MessageStatus.answered, "voicemail: message left")


@postgresql_only
def test_real_asterisk_a_person_who_says_hallo_gets_the_menu(alerts, phone_sounds):
    alerts.ami.action("Setvar", ("Variable", "BN_AMD"), ("Value", "yes"))
    channel = call_participant(alerts, phone="Local/human@test-endpoints")
    assert alerts.events.wait_event("VarSet", Channel=channel, Variable="AMDSTATUS")["Value"] == "HUMAN"
    start = next_playback(alerts, channel)
    assert start["Command"] == f'STREAM FILE {alerts.audio_name} "12" 0'  # the IVR, with 1 and 2
    m = final_message(alerts)
    assert (m.status, m.detail) == (MessageStatus.answered, "listened to the end")
