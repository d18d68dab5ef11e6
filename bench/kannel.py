"""Kannel, the peer users would pick instead of this gateway, through the same SMSC (a row of bench/sms).

    .venv/bin/python -m bench.kannel [-n 100000]     # its own simulator; prints Kannel's rate

Debian's `kannel` (1.4.5): bearerbox with one SMPP smsc group bound to the SMSC simulator as a
transceiver, `max-pending-submits = 100` (the gateway's window; Kannel's default of 10 gives
~620 msg/s), DLRs kept in memory, and smsbox for HTTP sendsms. bench/kannel.js injects N
messages over concurrent keep-alive HTTP requests, each asking for its final delivery report at
a dlr-url it serves itself, and times from the first request to the last report. The
configuration is written at run time into a temporary directory. Installed with apt-get when
missing, as scripts/ensure-system-packages.sh installs what the tests need (as root only).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "kannel.js"
USER, PASSWORD = "bench", "bench"


class KannelUnavailable(RuntimeError):
    """Kannel is not installed and cannot be (not root, no apt-get), or it would not start."""


def ensure_kannel() -> None:
    """Install Debian's `kannel` when bearerbox is missing (root only)."""
    if shutil.which("bearerbox") or Path("/usr/sbin/bearerbox").exists():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise KannelUnavailable("Kannel is not installed (as root: apt-get install kannel)")
    print("    installing Debian's kannel …", flush=True)
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "kannel"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(smsc_port: int, system_id: str, password: str, ports: dict[str, int]) -> str:
    return f"""
group = core
admin-port = {ports["admin"]}
admin-password = {PASSWORD}
admin-allow-ip = 127.0.0.1
smsbox-port = {ports["smsbox"]}
box-allow-ip = 127.0.0.1
dlr-storage = internal

group = smsc
smsc = smpp
smsc-id = sim
host = 127.0.0.1
port = {smsc_port}
transceiver-mode = true
smsc-username = {system_id}
smsc-password = {password}
system-type = ""
max-pending-submits = 100

group = smsbox
bearerbox-host = 127.0.0.1
sendsms-port = {ports["sendsms"]}

group = sendsms-user
username = {USER}
password = {PASSWORD}
max-messages = 1
"""


class Kannel:
    """bearerbox and smsbox, started on a configuration of their own; a context manager."""

    def __init__(self, smsc_port: int, system_id: str, password: str, log_dir: Path) -> None:
        self.ports = {"admin": _free_port(), "smsbox": _free_port(), "sendsms": _free_port()}
        self._dir = tempfile.TemporaryDirectory(prefix="bench-kannel-")
        self.conf = Path(self._dir.name) / "kannel.conf"
        self.conf.write_text(_config(smsc_port, system_id, password, self.ports))
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Kannel:
        ensure_kannel()
        # -v 2: INFO and up (the boxes log at DEBUG otherwise, which costs them).
        for box in ("bearerbox", "smsbox"):
            binary = shutil.which(box) or f"/usr/sbin/{box}"
            log = (self.log_dir / f"kannel-{box}.log").open("w")
            self.procs.append(
                subprocess.Popen([binary, "-v", "2", str(self.conf)], stdout=log, stderr=subprocess.STDOUT)
            )
            self._wait_for_port(self.ports["smsbox" if box == "bearerbox" else "sendsms"], box)
        self._wait_until_bound()
        return self

    def _wait_for_port(self, port: int, box: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[-1].poll() is not None:
                raise KannelUnavailable(f"{box} exited at start (see {self.log_dir}/kannel-{box}.log)")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.1)
        raise KannelUnavailable(f"{box} did not open port {port}")

    def _wait_until_bound(self, timeout: float = 20) -> None:
        """Until bearerbox says its smsc is online (its status page)."""
        url = f"http://127.0.0.1:{self.ports['admin']}/status.txt?password={PASSWORD}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2) as reply:
                    if "online" in reply.read().decode(errors="replace").split("SMSC connections:", 1)[-1]:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise KannelUnavailable("Kannel's smsc did not come online (bind refused?)")

    def __exit__(self, *exc) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._dir.cleanup()

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]


def kannel_result(kannel: Kannel, n: int, concurrency: int = 64) -> dict:
    """Inject n messages through Kannel's sendsms and wait for every final report; the JSON line of
    bench/kannel.js (rate, seconds, delivered, failed, refused)."""
    node = shutil.which("node")
    if not node:
        raise KannelUnavailable("node is not installed")
    cmd = [
        node,
        str(SCRIPT),
        "--sendsms-port",
        str(kannel.ports["sendsms"]),
        "--user",
        USER,
        "--password",
        PASSWORD,
        "-n",
        str(n),
        "--concurrency",
        str(concurrency),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=max(120.0, n / 50))
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise KannelUnavailable(
            f"the Kannel load failed (exit {done.returncode}): {done.stderr.strip()[-500:]}"
        )
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=100_000)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from smsc_sim import SmscSimulator

    logs = ROOT / ".cache" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    with (
        SmscSimulator(log_path=logs / "kannel-smsc.log") as sim,
        Kannel(sim.port, sim.system_id, sim.password, logs) as kannel,
    ):
        result = kannel_result(kannel, args.n)
    print(json.dumps(result))
    print(f"Kannel n={args.n:,}: {result['rate']:,.0f} msg/s end to end with receipts")


if __name__ == "__main__":
    main()
