"""The real Asterisk 22 the tip-line and spoken-alerts tests share: our configuration loads, AMI
answers with the generated user, and a call in Asterisk reaches a FastAGI server on the host."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

from asterisk_harness import RawAMI

REPO = Path(__file__).resolve().parent.parent


class FastAGIRecorder:
    """A one-call FastAGI server on 127.0.0.1: records the AGI environment, sets one variable."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(30)
        self.port = self.listener.getsockname()[1]
        self.env: dict[str, str] = {}
        self.replies: list[str] = []
        self.error: BaseException | None = None
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
            with conn, conn.makefile("rwb") as wire:
                for raw in iter(wire.readline, b""):
                    line = raw.decode().rstrip("\n")
                    if not line:  # the environment ends with a blank line
                        break
                    key, _, value = line.partition(": ")
                    self.env[key] = value
                wire.write(b'SET VARIABLE PING_RESULT "pong"\n')
                wire.flush()
                self.replies.append(wire.readline().decode().strip())
        except BaseException as exc:  # handed to the test thread, which reports it
            self.error = exc
        finally:
            self.listener.close()
            self.done.set()


def _login(asterisk, events: str = "off") -> RawAMI:
    ami = RawAMI(asterisk.ami_host, asterisk.ami_port)
    response = ami.login(asterisk.ami_user, asterisk.ami_secret, events)
    assert response["Response"] == "Success", response
    return ami


def test_runs_asterisk_22_with_our_configuration(asterisk):
    assert "Asterisk 22" in asterisk.cli("core show version")
    assert "127.0.0.1:5060" in asterisk.cli("pjsip show transports")


def test_boots_without_warnings_or_errors(asterisk):
    noisy = [line for line in asterisk.boot_messages if re.search(r"\] (WARNING|ERROR)\[", line)]
    assert not noisy, "Asterisk complained at start-up (see asterisk/modules.conf):\n" + "\n".join(noisy)


def test_loads_the_project_dialplans_and_the_test_contexts(asterisk):
    agi_fail = asterisk.cli("dialplan show agi_fail")
    assert "Context 'agi_fail' created by 'pbx_config'" in agi_fail
    assert "Playback(im-sorry)" in agi_fail
    assert "Context 'test-agi'" in asterisk.cli("dialplan show test-agi")


def test_production_dialplans_hold_no_test_contexts():
    contexts = [
        (conf.name, name)
        for conf in (REPO / "dialplans").glob("*.conf")
        for name in re.findall(r"^\[([^\]]+)\]", conf.read_text(), re.MULTILINE)
    ]
    assert contexts, "no dialplan contexts found"
    assert not [c for c in contexts if c[1].startswith("test")], contexts


def test_ami_login_with_the_generated_user(asterisk):
    ami = _login(asterisk)
    try:
        assert ami.banner.startswith("Asterisk Call Manager/")
        assert ami.action("Ping")["Response"] == "Success"
    finally:
        ami.close()


def test_ami_refuses_a_wrong_secret(asterisk):
    ami = RawAMI(asterisk.ami_host, asterisk.ami_port)
    try:
        assert ami.login(asterisk.ami_user, "not-the-secret")["Response"] == "Error"
    finally:
        ami.close()


def test_a_call_in_asterisk_reaches_a_fastagi_server_on_the_host(asterisk):
    fastagi = FastAGIRecorder()
    ami = _login(asterisk, events="user")
    try:
        response = ami.action(
            "Originate",
            ("Channel", "Local/s@test-agi"),
            ("Application", "Wait"),
            ("Data", "1"),
            ("CallerID", '"Test Caller" <0612345678>'),
            ("Timeout", "15000"),
            ("Variable", f"TEST_AGI_PORT={fastagi.port}"),
            ("Variable", "TEST_AGI_SCRIPT=ping"),
        )
        assert response["Response"] == "Success", response
        assert fastagi.done.wait(15), "Asterisk never connected to the FastAGI server"
        assert fastagi.error is None, fastagi.error
        assert fastagi.env["agi_network_script"] == "ping"
        assert fastagi.env["agi_request"] == f"agi://127.0.0.1:{fastagi.port}/ping"
        assert fastagi.env["agi_callerid"] == "0612345678"
        assert fastagi.replies == ["200 result=1"]
        assert ami.wait_event("UserEvent")["AgiStatus"] == "SUCCESS"
    finally:
        ami.close()


@contextlib.contextmanager
def _agi_fail_call(asterisk, meldkamer: str) -> Iterator[RawAMI]:
    """A call sent into [agi_fail] with the global BN_MELDKAMER_DIAL set to `meldkamer`."""
    ami = _login(asterisk, events="call,dialplan")
    try:
        ami.action("Setvar", ("Variable", "BN_MELDKAMER_DIAL"), ("Value", meldkamer))
        response = ami.action(
            "Originate",
            ("Channel", "Local/s@agi_fail"),
            ("Application", "Wait"),
            ("Data", "30"),
            ("Async", "true"),
        )
        assert response["Response"] == "Success", response
        yield ami
    finally:
        ami.action("Hangup", ("Channel", "/^Local/s@agi_fail-/"))
        ami.action("Setvar", ("Variable", "BN_MELDKAMER_DIAL"), ("Value", ""))
        ami.close()


def _log_size(asterisk) -> int:
    return asterisk.log_path.stat().st_size


def _sounds_missing(asterisk, since: int) -> list[str]:
    """Sound files Asterisk could not find, logged after offset `since` (earlier tests of the
    session, such as the alert call with a missing bulletin, miss files on purpose)."""
    with asterisk.log_path.open("rb") as log:
        log.seek(since)
        lines = log.read().decode(errors="replace").splitlines()
    return [line for line in lines if "does not exist in any format" in line]


def test_agi_fail_apologises_and_puts_the_caller_through_to_the_meldkamer(asterisk):
    since = _log_size(asterisk)
    with _agi_fail_call(asterisk, "Local/answer@test-endpoints") as ami:
        ami.wait_event("Newexten", Context="agi_fail", Application="Playback", AppData="im-sorry")
        ami.wait_event("Newexten", Context="agi_fail", Application="Playback", AppData="pls-hold-while-try")
        ami.wait_event("DialBegin", DestChannel="Local/answer@test-endpoints")
        assert ami.wait_event("DialEnd", DestChannel="Local/answer@test-endpoints")["DialStatus"] == "ANSWER"
    assert not _sounds_missing(asterisk, since)


def test_agi_fail_without_a_meldkamer_apologises_and_hangs_up(asterisk):
    since = _log_size(asterisk)
    with _agi_fail_call(asterisk, "") as ami:
        ami.wait_event("Newexten", Context="agi_fail", Application="Playback", AppData="im-sorry")
        ami.wait_event(
            "Newexten", Context="agi_fail", Application="Playback", AppData="cannot-complete-as-dialed"
        )
        ami.wait_event("Newexten", Context="agi_fail", Application="Hangup")
    assert not _sounds_missing(asterisk, since)


def test_restart_keeps_configuration_and_ami_user(asterisk):
    asterisk.restart()
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    assert sorted(m for m in mounts if m.startswith(f"{asterisk.chroot}/")) == [
        f"{asterisk.chroot}/dev",
        f"{asterisk.chroot}/proc",
    ], "exactly /proc and /dev are mounted into the chroot, once"
    ami = _login(asterisk)
    try:
        assert ami.action("Ping")["Response"] == "Success"
    finally:
        ami.close()
    assert "Context 'agi_fail'" in asterisk.cli("dialplan show agi_fail")


def test_reload_applies_the_configuration_again(asterisk):
    asterisk.reload()
    assert "Context 'agi_fail'" in asterisk.cli("dialplan show agi_fail")
    ami = _login(asterisk)
    try:
        assert ami.action("Ping")["Response"] == "Success"
    finally:
        ami.close()
