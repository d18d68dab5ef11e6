"""The tip line over real SIP: SIPp as the operator's trunk and as the phones behind it, the real
Asterisk 22 with the project's configuration plus a trunk made from the shipped template
(asterisk/pjsip_trunk.conf.template), the FastAGI server on the host over PostgreSQL.

Calls carry RTP: keys as RFC 4733 events and speech from Debian's sip-tester pcaps. Talk times
are checked against SIPp's own message timestamps: from the phone's 200 OK to the caller's BYE.
Ports: Asterisk 5060 (fixed by the harness), the trunk's SIPp 15070, the centralist's phone 15071,
the meldkamer's 15072, a participant's 15073; media from 26000 up.
"""

from __future__ import annotations

import secrets
import time
import wave

import pytest
from asterisk_harness import RawAMI
from phone_sounds import write_phone_sounds
from polling import until
from sip_harness import Sipp, audio_pcap, media, sipp_binary, trunk_config
from sqlalchemy import select, update

from gateway import prompts
from gateway.storage.models import Bulletin, Centralist, MatchedBy, Message, Tip, TipLeg
from ivr.context import IvrContext
from ivr.handlers import registry
from ivr.server import FastAGIServer

pytestmark = [
    pytest.mark.parametrize("db_url", ["postgresql"], indirect=True),
    pytest.mark.skipif(sipp_binary() is None, reason="SIPp missing: scripts/ensure-system-packages.sh test"),
]

DID = "08000011"
TRUNK = "127.0.0.1:15070"
CENTRALIST = "PJSIP/trunk/sip:centralist@127.0.0.1:15071"
MELDKAMER = "PJSIP/trunk/sip:meldkamer@127.0.0.1:15072"
RECORDINGS = "/var/spool/asterisk/recording/burgernet"
AUDIO_DIR = "/var/lib/burgernet/audio"
PARTICIPANT = "+31612345678"
NO_IDENTITY = "X-Burgernet-Test: no asserted identity"


@pytest.fixture
def sip(api, asterisk, tmp_path):
    """Asterisk with the trunk from the template, pointed at a FastAGI server on the host."""
    root = asterisk.chroot
    prompts.build(root / "var/lib/burgernet/prompts")
    asterisk.run_in_chroot("install", "-d", "-o", "asterisk", "-g", "asterisk", RECORDINGS)
    asterisk.local_files["pjsip_local.conf"] = trunk_config(
        TRUNK_PROXY=TRUNK,
        TRUNK_DOMAIN="operator.test",
        TRUNK_USER="burgernet",
        TRUNK_PASSWORD=secrets.token_urlsafe(12),
        TRUNK_MATCH="127.0.0.1",
    )
    asterisk.reload()
    assert "trust_id_inbound" in asterisk.cli("pjsip show endpoint trunk")
    ctx = IvrContext(api.sessions, cache=None)
    server = FastAGIServer(("127.0.0.1", 0), registry(ctx))
    server.start_in_background()
    for name, value in {
        "BN_IVR": f"agi://127.0.0.1:{server.server_address[1]}",
        "BN_MELDKAMER_DIAL": MELDKAMER,
        "BN_RING_SECONDS": "3",
    }.items():
        asterisk.cli(f"dialplan set global {name} {value}")
    with api.sessions() as s:
        s.execute(update(Centralist).values(dial_string=CENTRALIST))
        s.commit()
    api.asterisk, api.workdir, api.sipps = asterisk, tmp_path, []
    api.settings.recordings_dir = root / RECORDINGS.lstrip("/")
    yield api
    for sipp in api.sipps:
        sipp.stop()
    asterisk.cli("channel request hangup all")
    server.shutdown()
    server.server_close()
    ctx.close()
    del asterisk.local_files["pjsip_local.conf"]
    asterisk.reload()


def phone(api, scenario: str, port: int, calls: int = 1, ring_ms: int = 500) -> Sipp:
    sipp = Sipp(
        api.workdir,
        f"{scenario.removesuffix('.xml')}-{port}",
        scenario,
        port=port,
        media_port=26000 + 100 * (port - 15070),
        markers={"RING_MS": str(ring_ms)},
        calls=calls,
    )
    api.sipps.append(sipp)
    return sipp


def trunk_calls(api, callers, steps=(), hold_ms: int = 5000, *, at_once: bool = False) -> Sipp:
    """The operator's trunk delivers one call per (From user, identity header) of `callers`:
    all at once, or one after the other."""
    time.sleep(0.3)  # the phones' SIPp processes are listening
    sipp = Sipp(
        api.workdir,
        "trunk",
        "caller.xml",
        port=15070,
        media_port=26000,
        remote="127.0.0.1:5060",
        service=DID,
        callers=callers,
        markers={"MEDIA": media(steps, api.workdir), "HOLD_MS": str(hold_ms)},
        calls=len(callers),
        rate=len(callers),
        limit=len(callers) if at_once else 1,
    )
    api.sipps.append(sipp)
    return sipp


def done(*sipps: Sipp, timeout: float = 90) -> None:
    for sipp in sipps:
        assert sipp.wait(timeout) == 0, sipp.report()


def finished_tips(api, count: int, timeout: float = 30) -> list[Tip]:
    tips: list[Tip] = []

    def finished() -> bool:
        with api.sessions() as s:
            tips[:] = s.scalars(select(Tip).where(Tip.ended_at.is_not(None)).order_by(Tip.received_at)).all()
        return len(tips) >= count

    until(finished, timeout, lambda: f"{count} finished tips, {len(tips)} so far", every=0.2)
    assert len(tips) == count, f"{len(tips)} of {count} tips finished"
    return tips


def legs(api, tip: Tip) -> list[tuple]:
    with api.sessions() as s:
        return [
            (leg.dialed, leg.dial_status)
            for leg in s.scalars(select(TipLeg).where(TipLeg.call_id == tip.call_id).order_by(TipLeg.leg))
        ]


def sip_talk_seconds(callee: Sipp, caller: Sipp) -> list[float]:
    """Per call, in order: the callee's 200 OK to the INVITE → the caller's BYE, by SIPp's clocks."""
    answers = [
        m.at
        for m in callee.messages()
        if m.sent and m.first_line.startswith("SIP/2.0 200") and m.cseq.endswith("INVITE")
    ]
    byes = [m.at for m in caller.messages() if m.sent and m.first_line.startswith("BYE")]
    assert len(answers) == len(byes), (answers, byes)
    return [(bye - answer).total_seconds() for answer, bye in zip(answers, byes)]


def test_the_caller_is_recognised_in_from_and_in_p_asserted_identity(sip):
    """Two calls one after the other: the number in From, then only in P-Asserted-Identity (From
    anonymous; the template's trust_id_inbound). Both reach the action's centralist, and the talk
    time matches SIPp's timestamps to the second."""
    sip.register("+31612345678")
    sip.register("+31612345679")
    action = sip.launch()
    centralist = phone(sip, "phone.xml", 15071, calls=2)
    caller = trunk_calls(
        sip,
        [
            ("0612345678", NO_IDENTITY),
            ("anonymous", "P-Asserted-Identity: <sip:+31612345679@operator.test>"),
        ],
        steps=[("audio", 1000)],
        hold_ms=4000,
    )
    done(caller, centralist)
    tips = finished_tips(sip, 2)
    assert [(t.caller_number, t.matched_by, t.action_id, t.routed_to, t.dial_status) for t in tips] == [
        ("+31612345678", MatchedBy.caller_id, action["id"], CENTRALIST, "ANSWER"),
        ("+31612345679", MatchedBy.caller_id, action["id"], CENTRALIST, "ANSWER"),
    ]
    measured = sip_talk_seconds(centralist, caller)
    print(f"talk time: recorded {[t.talk_seconds for t in tips]}, SIP {[round(m, 3) for m in measured]}")
    for tip, sip_seconds in zip(tips, measured):
        assert abs(tip.talk_seconds - sip_seconds) <= 1, (tip.talk_seconds, sip_seconds)


def test_a_withheld_caller_keys_the_code_as_rfc4733_events(sip):
    action = sip.launch()
    centralist = phone(sip, "phone.xml", 15071)
    caller = trunk_calls(
        sip, [("anonymous", NO_IDENTITY)], steps=[("pause", 2500), ("keys", f"{action['action_code']}#")]
    )
    done(caller, centralist)
    [tip] = finished_tips(sip, 1)
    assert (tip.caller_number, tip.matched_by, tip.action_id, tip.routed_to, tip.dial_status) == (
        None,
        MatchedBy.action_code,
        action["id"],
        CENTRALIST,
        "ANSWER",
    )
    [talk] = sip_talk_seconds(centralist, caller)
    print(f"talk time after code entry: recorded {tip.talk_seconds}, SIP {talk:.3f}")
    assert abs(tip.talk_seconds - talk) <= 1
    assert (tip.ended_at - tip.received_at).total_seconds() > talk + 3  # the prompt and keys came first


def test_a_busy_centralist_passes_the_caller_to_the_meldkamer(sip):
    sip.register("+31612345678")
    action = sip.launch()
    busy = phone(sip, "busy.xml", 15071)
    meldkamer = phone(sip, "phone.xml", 15072)
    caller = trunk_calls(sip, [("0612345678", NO_IDENTITY)], hold_ms=3000)
    done(caller, busy, meldkamer)
    [tip] = finished_tips(sip, 1)
    assert (tip.action_id, tip.routed_to, tip.dial_status) == (action["id"], MELDKAMER, "ANSWER")
    assert legs(sip, tip) == [(CENTRALIST, "BUSY"), (MELDKAMER, "ANSWER")]
    [talk] = sip_talk_seconds(meldkamer, caller)
    assert abs(tip.talk_seconds - talk) <= 1


def test_when_nobody_answers_the_callers_words_are_recorded_and_served(sip):
    sip.register("+31612345678")
    action = sip.launch()
    centralist = phone(sip, "noanswer.xml", 15071)
    meldkamer = phone(sip, "noanswer.xml", 15072)
    # 3 s ringing each, the recording prompt; then the caller speaks (speech from a pcap) and hangs up.
    caller = trunk_calls(
        sip, [("0612345678", NO_IDENTITY)], steps=[("pause", 6000), ("audio", 12800)], hold_ms=1500
    )
    done(caller, centralist, meldkamer)
    [tip] = finished_tips(sip, 1)
    assert (tip.action_id, tip.dial_status, tip.talk_seconds) == (action["id"], "NOANSWER", None)
    assert legs(sip, tip) == [(CENTRALIST, "NOANSWER"), (MELDKAMER, "NOANSWER")]
    assert tip.recording_path and tip.recording_path.startswith(RECORDINGS)
    response = sip.client.get(f"/api/v1/tips/{tip.id}/recording", headers=sip.as_("centralist"))
    assert response.status_code == 200, response.text
    path = sip.workdir / "tip.wav"
    path.write_bytes(response.content)
    with wave.open(str(path)) as recording:
        seconds = recording.getnframes() / recording.getframerate()
        samples = recording.readframes(recording.getnframes())
    print(f"voice tip: {seconds:.1f} s recorded")
    assert seconds >= 2
    assert (
        max(abs(int.from_bytes(samples[i : i + 2], "little", signed=True)) for i in range(0, len(samples), 2))
        > 1000
    )


def test_fifty_simultaneous_calls_over_the_trunk_are_all_routed_and_logged_once(sip):
    numbers = [f"+316100000{n:02d}" for n in range(50)]
    for number in numbers:
        sip.register(number)
    action = sip.launch()
    centralist = phone(sip, "phone.xml", 15071, calls=50)
    caller = trunk_calls(sip, [(f"0{n[3:]}", NO_IDENTITY) for n in numbers], hold_ms=4000, at_once=True)
    done(caller, centralist, timeout=120)
    tips = finished_tips(sip, 50)
    assert sorted(t.caller_number for t in tips) == numbers
    assert len({t.call_id for t in tips}) == 50
    assert {(t.action_id, t.matched_by, t.dial_status) for t in tips} == {
        (action["id"], MatchedBy.caller_id, "ANSWER")
    }
    with sip.sessions() as s:
        assert len(s.scalars(select(TipLeg)).all()) == 50


# --- spoken alerts out over the trunk --------------------------------------------------------------


@pytest.fixture
def alert(sip):
    """A voice alert to PARTICIPANT with its espeak audio in the chroot, and the phones' sounds
    (a person's "Hallo?", an answering machine's greeting and beep) made into RTP pcaps."""
    from gateway.tts import AudioCache, make_engines

    sip.register(PARTICIPANT, channel="voice")
    action = sip.launch("Man met rode jas.", channels=("voice",))
    with sip.sessions() as s:
        message = s.scalars(select(Message).where(Message.action_id == action["id"])).one()
        bulletin = s.get(Bulletin, message.bulletin_id)
    cache = AudioCache(sip.asterisk.chroot / AUDIO_DIR.lstrip("/"), engines=make_engines("espeak"))
    audio = cache.ensure(bulletin.id, bulletin.spoken_text)
    sounds = sip.workdir / "sounds"
    sip.beep_ends_s = write_phone_sounds(sounds)
    sip.sounds = sounds / "var/lib/burgernet/test-sounds"
    sip.action, sip.message = action, message
    sip.audio_name = f"{AUDIO_DIR}/{audio.path.with_suffix('').name}"  # as Asterisk sees it
    ami = RawAMI(sip.asterisk.ami_host, sip.asterisk.ami_port, timeout=60)
    assert ami.login(sip.asterisk.ami_user, sip.asterisk.ami_secret)["Response"] == "Success"
    sip.ami = ami
    yield sip
    ami.close()


def originate(api) -> None:
    """What the voice worker does for the alert: Originate over AMI to the participant's number
    through the trunk (its default VOICE_DIAL_TEMPLATE), answered calls into [alert-call]."""
    channel = api.settings.voice_dial_template.format(number=PARTICIPANT)
    assert channel == f"PJSIP/{PARTICIPANT}@trunk"
    response = api.ami.action(
        "Originate",
        ("Channel", channel),
        ("Context", "alert-call"),
        ("Exten", "s"),
        ("Priority", "1"),
        ("Timeout", "20000"),
        ("Variable", f"BN_MESSAGE_ID={api.message.id}"),
        ("Variable", f"BN_AUDIO={api.audio_name}"),
        ("Async", "true"),
    )
    assert response["Response"] == "Success", response


def participant(api, pcap, lasts_ms: int, hold_ms: int) -> Sipp:
    """The participant's phone behind the trunk (the trunk's address: calls out go there)."""
    sipp = Sipp(
        api.workdir,
        "participant",
        "participant.xml",
        port=15070,
        media_port=26000,
        markers={
            "RING_MS": "500",
            "MEDIA": media([("pcap", (pcap, lasts_ms))], api.workdir),
            "HOLD_MS": str(hold_ms),
        },
    )
    api.sipps.append(sipp)
    return sipp


def outcome(api, timeout: float = 60) -> Message:
    def recorded() -> Message | None:
        with api.sessions() as s:
            message = s.get(Message, api.message.id)
        return message if message.final_at is not None else None

    return until(recorded, timeout, "the call's outcome", every=0.2)


def test_a_participant_who_presses_2_is_put_through_to_the_centralist(alert):
    """The participant says "Hallo?" (answering-machine detection hears a person), listens, and
    presses 2 five seconds in, as an RFC 4733 event; the centralist's phone answers."""
    voice = audio_pcap(alert.sounds / "human.wav", alert.workdir / "human.pcap", keys="2", keys_at_ms=5000)
    centralist = phone(alert, "phone.xml", 15071)
    phone_of_participant = participant(alert, voice, lasts_ms=6000, hold_ms=4000)
    time.sleep(0.3)
    originate(alert)
    done(phone_of_participant, centralist, timeout=60)
    message = outcome(alert)
    assert message.detail.startswith("pressed 2 (put through)"), message.detail
    [tip] = finished_tips(alert, 1)
    assert (tip.caller_number, tip.matched_by, tip.action_id, tip.routed_to, tip.dial_status) == (
        PARTICIPANT,
        MatchedBy.caller_id,
        alert.action["id"],
        CENTRALIST,
        "ANSWER",
    )
    [talk] = sip_talk_seconds(centralist, phone_of_participant)
    print(f"talk time after pressing 2: recorded {tip.talk_seconds}, SIP {talk:.3f}")
    assert abs(tip.talk_seconds - talk) <= 1


def test_an_answering_machine_gets_the_message_after_its_beep(alert):
    greeting = audio_pcap(alert.sounds / "machine.wav", alert.workdir / "machine.pcap")
    machine = participant(alert, greeting, lasts_ms=100, hold_ms=60000)  # Asterisk hangs up
    time.sleep(0.3)
    originate(alert)
    done(machine, timeout=90)
    message = outcome(alert)
    assert message.detail == "voicemail: message left"
    with alert.sessions() as s:
        assert s.scalars(select(Tip)).all() == []
