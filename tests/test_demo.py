"""`make demo` in miniature: the scripted action runs from create to close over real HTTP."""

import re
import socket

from gateway.config import Settings
from gateway.demo import run_demo
from ivr.demo_line import DemoTipLine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_demo_runs_an_action_from_create_to_close(tmp_path, capsys):
    settings = Settings(
        environment="development",
        data_dir=tmp_path,
        api_port=free_port(),
        audio_dir=tmp_path / "audio",
        tts_engines="espeak",
        ami_secret="",
    )
    steps = run_demo(settings, DemoTipLine, participants=1_000, keep_serving=False)

    reached = steps["preview"]["total"]
    assert reached > 0
    assert sum(steps["launch"]["queued"].values()) == reached
    assert steps["close"]["action"]["status"] == "closed"
    counts = {(r["kind"], r["status"]): 0 for r in steps["progress"]}
    for r in steps["progress"]:
        counts[(r["kind"], r["status"])] += r["count"]
    # Every number got the alert, the update and the closing message: once each. SMS went to the
    # SMSC simulator and came back delivered; voice messages to the dry-run outbox (submitted).
    per_kind = {
        kind: sum(n for (k, st), n in counts.items() if k == kind and st in ("submitted", "delivered"))
        for kind in ("alert", "update", "closing")
    }
    assert per_kind == {"alert": reached, "update": reached, "closing": reached}
    assert {st for (_, st) in counts} <= {"submitted", "delivered"}
    assert any(st == "delivered" for (_, st) in counts)  # the SMS worker and its receipts did run
    # Two tip calls through the FastAGI server: by caller ID, and a withheld caller by code.
    assert sorted(t["matched_by"] for t in steps["tips"]) == ["action_code", "caller_id"]
    assert {t["dial_status"] for t in steps["tips"]} == {"ANSWER"}
    # The spoken alert's audio, made as the voice worker makes it, and where it is.
    audio = steps["audio"]
    assert audio.path.parent == tmp_path / "audio" and audio.path.stat().st_size > 44 and audio.seconds > 3
    out = capsys.readouterr().out
    assert f"spoken alert audio: {audio.path} ({audio.seconds:.1f} s" in out and "made by espeak" in out
    assert "no Asterisk configured" in out
    assert f"action code {steps['launch']['action']['action_code']}" in out
    assert "******" in out and not re.search(r"\+\d{8,}", out)  # numbers are masked in what the demo prints


def test_with_an_asterisk_configured_voice_is_not_dry_run(tmp_path, capsys):
    """AMI_SECRET set: voice messages are for the voice worker, never marked sent by the dry-run
    outbox. Here nothing listens on the AMI port, so the demo says so and goes on without calls."""
    settings = Settings(
        environment="development",
        data_dir=tmp_path,
        api_port=free_port(),
        audio_dir=tmp_path / "audio",
        tts_engines="espeak",
        ami_secret="demo-secret",
        ami_port=free_port(),
    )
    steps = run_demo(settings, DemoTipLine, participants=1_000, keep_serving=False)
    out = capsys.readouterr().out
    assert f"calls placed through Asterisk at 127.0.0.1:{settings.ami_port}" in out
    assert "voice: cannot use Asterisk" in out and "demo-secret" not in out
    voice = {(r["kind"], r["status"]) for r in steps["progress"] if r["channel"] == "voice"}
    sms = {(r["kind"], r["status"]) for r in steps["progress"] if r["channel"] == "sms"}
    assert voice and all(status != "submitted" for _, status in voice)
    assert {status for kind, status in sms if kind == "alert"} <= {
        "submitted",
        "delivered",
    }  # SMS still go out
    assert any(kind == "alert" for kind, _ in sms)
