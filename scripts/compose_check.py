#!/usr/bin/env python3
"""The compose stack end to end (run by scripts/compose-check.sh, which prepares Docker and the
images): docker-compose.yml as shipped, plus scripts/compose-check/docker-compose.check.yml for
what a real site brings itself — the SMSC binds and the SIP trunk.

Checks, in order (each prints its time):
  1. the stack comes up healthy; migrations at head; GET /health ok; /livez, /readyz
  2. `burgernet create-admin` in the gateway container gives a working key
  3. an action launched through the API: its SMS reaches the SMSC simulator (tests/smsc, on the
     host, on the compose network's gateway address) and its spoken alert is placed through the
     stack's Asterisk to a SIPp phone (SIPp in Asterisk's network namespace, via nsenter)
  4. a tip call from the participant's number: Asterisk → IVR → the centralist (a SIPp phone),
     logged through the tip writer into PostgreSQL
  5. SIGTERM to the voice worker during an alert call: it exits 0 once the call is over, its
     outcome written
  6. `--scale sms-worker=2`: a 100-recipient action never exceeds the bind's rate in any
     sliding second of the SMSC's accept times
  7. every gateway process serves /metrics
Then `down -v` (also on failure). Standard library only: runs with the system's python3.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "scripts" / "compose-check"
PROJECT = os.environ.get("COMPOSE_CHECK_PROJECT", "burgernet-check")
BIND_RATE = 20  # per second: low enough that 100 SMS take 5 s, so that two workers must share it
PARTICIPANT = "+31612340001"  # the participant who gets the alerts and calls the tip line
STARTED = time.monotonic()


def say(text: str) -> None:
    print(f"==> compose-check [{time.monotonic() - STARTED:6.1f} s] {text}", flush=True)


class CheckFailed(Exception):
    pass


def until(predicate: Callable[[], object], timeout: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (OSError, subprocess.CalledProcessError, ValueError, KeyError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """docker-compose.yml plus the check's override, as project PROJECT."""

    def __init__(self, compose: list[str], env: dict[str, str]) -> None:
        files = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(HERE / "docker-compose.check.yml")]
        self.base = [*compose, "-p", PROJECT, "--project-directory", str(ROOT), *files]
        self.env = env

    def run(self, *args: str, check: bool = True, capture: bool = True) -> str:
        done = subprocess.run(
            [*self.base, *args], env=self.env, cwd=ROOT, text=True, capture_output=capture, check=False
        )
        if check and done.returncode != 0:
            raise CheckFailed(
                f"compose {' '.join(args)} failed ({done.returncode}):\n{(done.stderr or '')[-3000:]}"
            )
        return done.stdout or ""

    def container(self, service: str) -> str:
        ids = self.run("ps", "-q", service).split()
        if not ids:
            raise CheckFailed(f"no container for {service}")
        return ids[0]

    def containers(self, service: str) -> list[str]:
        return self.run("ps", "-q", service).split()

    def exec(self, service: str, *command: str) -> str:
        return self.run("exec", "-T", service, *command)

    def sql(self, query: str) -> str:
        return self.exec("postgres", "psql", "-U", "burgernet", "-d", "burgernet", "-tAc", query).strip()


class Api:
    def __init__(self, base: str) -> None:
        self.base, self.key = base, ""

    def call(self, method: str, path: str, body: dict | None = None, expect: int = 200):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.key:
            request.add_header("Authorization", f"Bearer {self.key}")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status, text = answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode()
        if status != expect:
            raise CheckFailed(f"{method} {path}: {status} (wanted {expect}): {text[:500]}")
        return json.loads(text) if text else None


class Smsc:
    """tests/smsc/simulator.js on the host, listening on the compose network's gateway address."""

    def __init__(self, host: str, workdir: Path) -> None:
        self.system_id, self.password = "bncheck", secrets.token_hex(3)
        self.process = subprocess.Popen(
            ["node", str(ROOT / "tests/smsc/simulator.js"), "--port", "0", "--control-port", "0"]
            + ["--host", host, "--system-id", self.system_id, "--password", self.password],
            stdout=subprocess.PIPE,
            stderr=(workdir / "smsc.log").open("w"),
            text=True,
        )
        ready = json.loads(self.process.stdout.readline())  # type: ignore[union-attr]
        self.host, self.port, self.control = host, ready["port"], ready["control_port"]

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(f"http://{self.host}:{self.control}{path}", timeout=10) as answer:
            return json.loads(answer.read())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class Sipp:
    """SIPp in the Asterisk container's network namespace (nsenter): the trunk's far end."""

    def __init__(self, pid: str, workdir: Path) -> None:
        self.pid, self.workdir = pid, workdir

    def command(self, *args: str) -> list[str]:
        return ["nsenter", "-t", self.pid, "-n", "sipp", *args]

    def phones(self) -> subprocess.Popen:
        """Phones that answer every call on 127.0.0.1:5070 (SIPp's built-in uas), messages logged."""
        return subprocess.Popen(
            self.command("-sn", "uas", "-i", "127.0.0.1", "-p", "5070", "-mp", "16000", "-nostdin")
            + ["-trace_msg", "-message_file", str(self.workdir / "phones.msg")],
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "phones.log").open("w"),
        )

    def invites(self) -> int:
        path = self.workdir / "phones.msg"
        return path.read_text(errors="replace").count("INVITE sip:") if path.exists() else 0

    def tip_call(self, caller: str, did: str) -> subprocess.CompletedProcess:
        """One call from `caller` to the tip line `did`; talks 6 s once answered, hangs up."""
        return subprocess.run(
            self.command(
                "127.0.0.1:5060",
                "-sf",
                str(HERE / "tip-call.xml"),
                "-key",
                "caller",
                caller,
                "-s",
                did,
                "-i",
                "127.0.0.1",
                "-p",
                "5071",
                "-mp",
                "16100",
                "-m",
                "1",
                "-timeout",
                "60",
                "-nostdin",
                "-trace_err",
                "-error_file",
                str(self.workdir / "tip-call.err"),
            ),
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )


def max_in_any_second(times_ms: list[float]) -> int:
    """The most accepts in any sliding second."""
    times = sorted(times_ms)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1000:
            start += 1
        best = max(best, end - start + 1)
    return best


def main() -> int:
    compose = shlex.split(os.environ.get("COMPOSE", "docker-compose"))
    workdir = Path(tempfile.mkdtemp(prefix="burgernet-compose-check-"))
    gateway_port = free_port()
    env = {
        **os.environ,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "AMI_SECRET": secrets.token_urlsafe(24),
        "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
        "GATEWAY_PORT": str(gateway_port),
        "PUBLISH_ADDRESS": "127.0.0.1",
        "MELDKAMER_DIAL": "PJSIP/meldkamer@trunk",
        "CHECK_DIR": str(workdir),
    }
    (workdir / "sms-binds.toml").write_text("# written when the SMSC simulator is up\n")
    shutil.copy(HERE / "pjsip_local.conf", workdir / "pjsip_local.conf")
    stack = Stack(compose, env)
    smsc = phones = None
    say(f"{' '.join(compose)}, project {PROJECT}, work files in {workdir}")
    stack.run("down", "-v", "--remove-orphans", check=False)  # what an interrupted run left
    try:
        say("building the images")
        stack.run("build", capture=False)
        # The databases first: that makes the compose network, whose gateway address the SMSC
        # simulator listens on (`up --no-start` would wait for the migration forever with compose v1).
        stack.run("up", "-d", "postgres", "redis")
        network = f"{PROJECT}_default"
        gateway_ip = subprocess.run(
            ["docker", "network", "inspect", network, "--format", "{{(index .IPAM.Config 0).Gateway}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        smsc = Smsc(gateway_ip, workdir)
        say(f"SMSC simulator on {gateway_ip}:{smsc.port} (the compose network's gateway)")
        (workdir / "sms-binds.toml").write_text(
            "[[bind]]\n"
            f'name = "check"\noperator = "check"\nhost = "{gateway_ip}"\nport = {smsc.port}\n'
            f'system_id = "{smsc.system_id}"\npassword = "{smsc.password}"\nrate_per_second = {BIND_RATE}\n'
        )
        say("starting the stack")
        stack.run("up", "-d")

        # 1. healthy, migrated, answering
        api = Api(f"http://127.0.0.1:{gateway_port}")
        health = until(lambda: api.call("GET", "/health"), 240, "GET /health")
        say(f"/health: {health['status']}, backlog {health['queue_backlog']}")
        api.call("GET", "/livez")
        api.call("GET", "/readyz")
        revision = stack.sql("SELECT version_num FROM alembic_version")
        if not revision:
            raise CheckFailed("no alembic revision: migrations did not run")
        say(f"migrations at {revision}")
        until(
            lambda: all(
                "healthy" in stack.run("ps", s)
                for s in ("gateway", "ivr", "tip-writer", "asterisk", "housekeeping")
            ),
            180,
            "every healthcheck healthy",
            every=2,
        )
        say("gateway, housekeeping, ivr, tip-writer, asterisk healthy")

        # 2. the first admin
        out = stack.exec("gateway", "burgernet", "create-admin", "compose-check")
        api.key = out.strip().splitlines()[-1]
        api.call("GET", "/api/v1/me")
        say("create-admin: the key works")

        # 3. an action: SMS to the SMSC, a spoken alert to a SIPp phone
        asterisk_pid = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Pid}}", stack.container("asterisk")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        sipp = Sipp(asterisk_pid, workdir)
        phones = sipp.phones()
        until(lambda: len(smsc.get("/stats")["binds"]) >= 1, 90, "the SMS worker's bind")
        municipality = api.call(
            "POST",
            "/api/v1/municipalities",
            {"cbs_code": "GM0344", "name": "Utrecht", "region": "Midden"},
            201,
        )
        centralist = api.call(
            "POST",
            "/api/v1/centralists",
            {"name": "C. Heck", "meldkamer": "Midden", "dial_string": "PJSIP/centralist@trunk"},
            201,
        )

        def participant(phone: str, channel: str, lat: float = 52.09) -> None:
            address = {"postcode": "3511AB", "house_number": "1", "lat": lat, "lon": 5.12, "channel": channel}
            body = {
                "name": "P",
                "phone": phone,
                "addresses": [address],
                "municipality_id": municipality["id"],
            }
            api.call("POST", "/api/v1/participants", body, 201)

        participant(PARTICIPANT, "voice")
        participant("+31612340002", "sms")

        def launch(lat: float, radius: int) -> dict:
            body = {
                "type": "robbery",
                "description": "Man met rode jas.",
                "lat": lat,
                "lon": 5.12,
                "radius_m": radius,
                "channels": ["sms", "voice"],
                "centralist_id": centralist["id"],
            }
            action = api.call("POST", "/api/v1/actions", body, 201)
            return api.call("POST", f"/api/v1/actions/{action['id']}/launch")["action"]

        action = launch(52.09, 500)
        say(f"action {action['id']} launched (code {action['action_code']})")
        until(lambda: smsc.get("/stats")["submits_accepted"] >= 1, 60, "the SMS at the SMSC")
        until(
            lambda: (
                stack.sql(
                    f"SELECT count(*) FROM message WHERE action_id = {action['id']} AND channel = 'sms' "
                    "AND status IN ('submitted', 'delivered')"
                )
                == "1"
            ),
            60,
            "the SMS's status in the database",
        )
        say("SMS at the SMSC simulator, its status written")
        until(lambda: sipp.invites() >= 1, 120, "the alert call at the SIPp phone")
        voice = until(
            lambda: stack.sql(
                f"SELECT status || ' ' || coalesce(detail, '') FROM message WHERE action_id = {action['id']} "
                "AND channel = 'voice' AND status NOT IN ('queued', 'sending')"
            ),
            120,
            "the alert call's outcome",
        )
        if not voice.startswith("answered"):
            raise CheckFailed(f"the alert call was not answered: {voice}")
        say(f"spoken alert placed through Asterisk to the SIPp phone: {voice}")

        # 4. a tip call: IVR → tip writer → PostgreSQL
        invites_before = sipp.invites()
        call = sipp.tip_call(PARTICIPANT, "08000011")
        if call.returncode != 0:
            raise CheckFailed(f"the tip call failed ({call.returncode}): {call.stderr[-1500:]}")
        if sipp.invites() <= invites_before:
            raise CheckFailed("the tip call was not put through to the centralist's phone")
        tip = until(
            lambda: stack.sql(
                "SELECT matched_by || ' ' || coalesce(dial_status, '') || ' ' || coalesce(talk_seconds::text, '') "
                f"FROM tip WHERE action_id = {action['id']} AND ended_at IS NOT NULL"
            ),
            60,
            "the tip in PostgreSQL",
        )
        say(f"tip call routed to the centralist and logged: {tip}")

        # 5. SIGTERM drains the voice worker: the call under way ends before it exits, outcome written
        participant("+31612340003", "voice", lat=52.3)
        invites_before = sipp.invites()
        drained = launch(52.3, 500)
        until(lambda: sipp.invites() > invites_before, 60, "the next alert call at the SIPp phone")
        worker_id = stack.container("voice-worker")
        started = time.monotonic()
        stack.run("stop", "voice-worker")  # SIGTERM (stop_grace_period 2 min)
        stopped_after = time.monotonic() - started
        exit_code = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.ExitCode}}", worker_id],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        outcome = stack.sql(
            f"SELECT status FROM message WHERE action_id = {drained['id']} AND channel = 'voice'"
        )
        if exit_code != "0" or outcome in ("queued", "sending"):
            raise CheckFailed(f"voice worker on SIGTERM: exit {exit_code}, its call left {outcome!r}")
        say(f"voice worker stopped {stopped_after:.1f} s after SIGTERM, exit 0, its call {outcome}")
        stack.run("start", "voice-worker")

        # 6. two SMS workers hold the bind's rate
        stack.run("up", "-d", "--scale", "sms-worker=2", "--no-recreate", "sms-worker")
        until(lambda: len(stack.containers("sms-worker")) == 2, 60, "two SMS workers")
        until(lambda: len(smsc.get("/stats")["binds"]) >= 2, 90, "both workers bound")
        for i in range(100):
            participant(f"+3161235{i:04d}", "sms", lat=52.2)
        accepted_before = len(smsc.get("/accepts")["accepts"])
        started = time.monotonic()
        launch(52.2, 500)
        until(lambda: len(smsc.get("/accepts")["accepts"]) >= accepted_before + 100, 120, "100 SMS accepted")
        took = time.monotonic() - started
        times = [ms for ms, _ in smsc.get("/accepts")["accepts"][accepted_before:]]
        peak = max_in_any_second(times)
        say(f"2 SMS workers: 100 SMS in {took:.1f} s, at most {peak} in any second (bind rate {BIND_RATE}/s)")
        if peak > BIND_RATE:
            raise CheckFailed(f"the bind's rate was exceeded: {peak} in one second > {BIND_RATE}")

        # 7. metrics from each process (on the compose network: from inside a container)
        for service, host in (
            ("gateway", "gateway"),
            ("sms-worker", "sms-worker"),
            ("voice-worker", "asterisk"),
            ("ivr", "ivr"),
            ("tip-writer", "tip-writer"),
            ("housekeeping", "housekeeping"),
        ):
            text = stack.exec(
                "gateway",
                "python",
                "-c",
                f"import urllib.request; print(urllib.request.urlopen('http://{host}:9100/metrics').read().decode())",
            )
            if "burgernet_process_info" not in text:
                raise CheckFailed(f"no metrics from {service}")
            (workdir / f"metrics-{service}.txt").write_text(text)
        say(f"every process serves /metrics (copies in {workdir})")
        say(f"PASSED in {time.monotonic() - STARTED:.0f} s")
        return 0
    except CheckFailed as exc:
        say(f"FAILED: {exc}")
        for service in (
            "postgres",
            "migrate",
            "prompts",
            "gateway",
            "sms-worker",
            "voice-worker",
            "ivr",
            "tip-writer",
            "asterisk",
            "housekeeping",
        ):
            print(f"--- last log lines of {service} ---", flush=True)
            print(stack.run("logs", "--tail", "25", service, check=False)[-4000:], flush=True)
        return 1
    finally:
        if phones is not None:
            phones.send_signal(signal.SIGTERM)
            try:
                phones.wait(5)
            except subprocess.TimeoutExpired:
                phones.kill()
        if os.environ.get("COMPOSE_CHECK_KEEP") != "1":
            say("down -v")
            stack.run("down", "-v", "--remove-orphans", check=False)
        if smsc is not None:
            smsc.stop()


if __name__ == "__main__":
    sys.exit(main())
