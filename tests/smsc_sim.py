"""The independent SMSC (tests/smsc/simulator.js, node-smpp) as a Python object for tests and benchmarks.

    sim = SmscSimulator()
    sim.start()                      # node on a free port; sim.port, sim.system_id, sim.password
    sim.configure(throttle_ms=500)   # POST /config (merge); see tests/smsc/README.md
    sim.send_mo("+31612345678", "3000", "STOP")
    sim.stats()["submits_accepted"]
    sim.send_mo("+316…", "3000", long_text, one_at_a_time=True, resend_part=1)  # an SMSC with a window of 1
    sim.silence()                    # bound connections stop answering (half-open); new ones are served
    sim.restart()                    # same SMPP port, counters start afresh
    SmscSimulator(message_ids="counter")  # ids start at 1 in every process (they repeat after a restart)
    sim.stop()

The control calls are plain blocking HTTP on loopback. From inside an event loop that also runs
the ESME, use the `a…` variants (`asend_mo`, `astats`), which run in a thread: `send_mo` waits for
the ESME's deliver_sm_resp, which a blocked loop could never send.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

SMSC_DIR = Path(__file__).resolve().parent / "smsc"
SCRIPT = SMSC_DIR / "simulator.js"
START_TIMEOUT_S = 15.0


class SimulatorUnavailable(RuntimeError):
    """node or the simulator's npm packages are missing, or the simulator did not start."""


class ControlError(RuntimeError):
    """The simulator's control port refused a request (bad setting, no receiver bound, …)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"SMSC simulator control: HTTP {status}: {body.get('error', body)}")
        self.status, self.body = status, body


def node_binary() -> str:
    """The node executable, or SimulatorUnavailable saying how to get it."""
    node = shutil.which("node")
    if not node:
        raise SimulatorUnavailable("node is not installed; run `make test`, which installs it")
    if not (SMSC_DIR / "node_modules" / "smpp").is_dir():
        raise SimulatorUnavailable(
            f"{SMSC_DIR / 'node_modules'} is missing; run `make test`, which runs npm ci there"
        )
    return node


class SmscSimulator:
    """One simulator process: an SMPP port plus its HTTP control port, both on 127.0.0.1."""

    def __init__(
        self,
        system_id: str = "burgernet",
        password: str | None = None,
        port: int = 0,
        log_path: Path | None = None,
        message_ids: str = "unique",
    ) -> None:
        self.system_id = system_id
        self.message_ids = message_ids  # "unique", or "counter": from 1 in every process
        # A fresh password per simulator: nothing secret is written down, and a test that binds
        # with the wrong one fails for a reason.
        self.password = password or secrets.token_hex(4)  # SMPP passwords are at most 8 characters
        self.port = port
        self.control_port = 0
        self.log_path = log_path
        self._proc: subprocess.Popen | None = None
        self._log_thread: threading.Thread | None = None
        self.log_lines: list[str] = []

    # --- the process ------------------------------------------------------------------------

    def start(self) -> SmscSimulator:
        """Start node and wait for its ready line; the SMPP port stays the same across restarts."""
        if self._proc is not None:
            raise RuntimeError("the simulator is already running")
        node = node_binary()
        cmd = [
            node,
            str(SCRIPT),
            "--port",
            str(self.port),
            "--control-port",
            "0",
            "--system-id",
            self.system_id,
            "--password",
            self.password,
            "--message-ids",
            self.message_ids,
        ]
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self._log_thread = threading.Thread(target=self._collect_log, args=(self._proc,), daemon=True)
            self._log_thread.start()
            ready_to_read, _, _ = select.select(
                [self._proc.stdout], [], [], max(0.1, deadline - time.monotonic())
            )
            line = self._proc.stdout.readline() if ready_to_read else ""
            if line:
                ready = json.loads(line)
                self.port, self.control_port = ready["port"], ready["control_port"]
                return self
            self._proc.kill()
            self._proc.wait()
            self._proc = None
            # A restart may find the old port still held for a moment: try again until the deadline.
            if self.port == 0 or time.monotonic() > deadline:
                raise SimulatorUnavailable(
                    "the SMSC simulator did not start:\n" + "\n".join(self.log_lines[-20:])
                )
            time.sleep(0.1)

    def _collect_log(self, proc: subprocess.Popen) -> None:
        sink = self.log_path.open("a") if self.log_path else None
        try:
            for line in proc.stderr:
                self.log_lines.append(line.rstrip("\n"))
                del self.log_lines[:-500]
                if sink:
                    sink.write(line)
                    sink.flush()
        finally:
            if sink:
                sink.close()

    def stop(self) -> None:
        """Stop node (SIGTERM, then SIGKILL after 5 s); every SMPP connection drops."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
        if self._log_thread:
            self._log_thread.join(5)

    def kill(self) -> None:
        """SIGKILL: the SMSC vanishes without closing anything cleanly."""
        if self._proc is not None:
            os.kill(self._proc.pid, signal.SIGKILL)
        self.stop()

    def restart(self) -> SmscSimulator:
        """Stop and start again on the same SMPP port (configuration and counters start afresh)."""
        self.stop()
        return self.start()

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the simulator process has used so far, from /proc."""
        if self._proc is None:
            raise SimulatorUnavailable("the SMSC simulator is not running")
        return process_cpu_seconds(self._proc.pid)

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise SimulatorUnavailable("the SMSC simulator is not running")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> SmscSimulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- the control port -------------------------------------------------------------------

    def _call(self, method: str, path: str, body: dict | None = None, timeout: float = 10.0) -> dict:
        if not self.running:
            raise SimulatorUnavailable("the SMSC simulator is not running")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.control_port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise ControlError(exc.code, json.loads(exc.read() or b"{}")) from None

    def configure(self, **settings: Any) -> dict:
        """Merge settings into the simulator's configuration; returns the whole configuration."""
        return self._call("POST", "/config", settings)

    def send_mo(
        self,
        sender: str,
        to: str,
        text: str,
        *,
        wait: bool = True,
        system_id: str | None = None,
        **in_turn: Any,
    ) -> dict:
        """An MO message to a bound receiver; with wait, the answer says whether the ESME acknowledged it.

        `in_turn`: one_at_a_time=True (each part after the previous part's response, or its
        part_timeout_ms), only_parts=[k, …] (just those), reference=n (the concatenation
        reference, to send the rest of a message later), resend_part=k (part k once more
        afterwards); the answer then has each part's `results` ({part, status, ms}; status None:
        no response in time) and `resent`."""
        body: dict[str, Any] = {"from": sender, "to": to, "text": text, "wait": wait, **in_turn}
        if system_id:
            body["system_id"] = system_id
        timeout = 10.0 + (len(text) // 100 + 2) * in_turn.get("part_timeout_ms", 5000) / 1000
        return self._call("POST", "/mo", body, timeout=timeout)

    def silence(self) -> int:
        """Every bound connection stops answering and sending but stays open; returns how many."""
        return self._call("POST", "/silence")["silenced"]

    def stats(self, destinations: bool = True) -> dict:
        """Counters (see tests/smsc/README.md); destinations=False leaves out by_destination."""
        return self._call("GET", "/stats" + ("" if destinations else "?destinations=0"))

    def texts(self, destination: str) -> list[str]:
        """The whole (reassembled) message texts accepted for one destination, in order."""
        from urllib.parse import quote

        return self._call("GET", f"/texts?destination={quote(destination)}")["texts"]

    def accepts(self, start: int = 0) -> list[tuple[float, str]]:
        """Every accepted submit_sm from the `start`th on: (accept time in s since the epoch, destination)."""
        return [(t / 1000, dest) for t, dest in self._call("GET", f"/accepts?from={start}")["accepts"]]

    def release_receipts(self) -> int:
        """Send the receipts held back by withhold_receipts; returns how many."""
        return self._call("POST", "/receipts/release")["released"]

    def reset(self) -> None:
        """Default configuration, counters at zero (bound sessions stay bound)."""
        self._call("POST", "/reset")

    def wait_for(self, predicate, timeout: float = 30.0, what: str = "the SMSC condition") -> dict:
        """Poll stats() until predicate(stats) is true; returns the whole stats then, or raises
        TimeoutError.

        The predicate sees the stats without `by_destination`: serialising one entry per number
        every poll stalls the simulator's one thread for longer as a run grows (100,000 numbers:
        tens of ms every 20 ms), and it then reads submits late — the very lateness the rate
        limit has to make up for."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.stats(destinations=False)
            if predicate(current):
                return self.stats()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not reached in {timeout} s; stats: {_summary(current)}")
            time.sleep(0.02)

    # --- from inside an event loop ----------------------------------------------------------

    async def asend_mo(self, sender: str, to: str, text: str, **kw: Any) -> dict:
        return await asyncio.to_thread(self.send_mo, sender, to, text, **kw)

    async def astats(self, destinations: bool = True) -> dict:
        return await asyncio.to_thread(self.stats, destinations)

    async def await_for(self, predicate, timeout: float = 30.0, what: str = "the SMSC condition") -> dict:
        return await asyncio.to_thread(self.wait_for, predicate, timeout, what)


def _summary(stats: dict) -> str:
    return json.dumps({k: v for k, v in stats.items() if k not in ("by_destination", "per_second")})


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) process `pid` has used so far, from /proc; 0 once
    it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
