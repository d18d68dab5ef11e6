"""The reference of bench/sms: node-smpp's own client against the SMSC simulator, window 100.

    .venv/bin/python -m bench.smsc_reference [-n 100000] [--window 100]

starts a simulator (tests/smsc/simulator.js, immediate receipts), runs bench/smsc_reference.js
against it and prints the reference's JSON line, its rate and the simulator's CPU. `bench.sms`
calls `run_reference` with a simulator of its own, so both of its figures meet the same SMSC.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "smsc_reference.js"


class ReferenceFailed(RuntimeError):
    """The node reference client did not finish (bind refused, connection lost, stalled)."""


def reference_result(
    n: int, port: int, system_id: str, password: str, window: int = 100, timeout_s: float | None = None
) -> dict:
    """Run the node reference client once; its JSON result (rate, seconds, submit_rate, …)."""
    node = shutil.which("node")
    if not node:
        raise ReferenceFailed("node is not installed; run `make smsc-sim` (it needs nodejs and npm)")
    cmd = [
        node,
        str(SCRIPT),
        "--port",
        str(port),
        "--system-id",
        system_id,
        "--password",
        password,
        "-n",
        str(n),
        "--window",
        str(window),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s or max(120.0, n / 100))
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise ReferenceFailed(
            f"the reference client failed (exit {done.returncode}): {done.stderr.strip()[-500:]}"
        )
    return json.loads(lines[-1])


def run_reference(n: int, port: int, system_id: str, password: str) -> float:
    """Messages per second of the node client pushing n submit_sm (window 100) until every receipt is in."""
    return reference_result(n, port, system_id, password)["rate"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=100)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from smsc_sim import SmscSimulator

    with SmscSimulator() as sim:
        cpu_before, wall_before = sim.cpu_seconds(), time.monotonic()
        result = reference_result(args.n, sim.port, sim.system_id, sim.password, window=args.window)
        cpu = sim.cpu_seconds() - cpu_before
        wall = time.monotonic() - wall_before
        stats = sim.stats(destinations=False)
    print(json.dumps(result))
    print(
        f"simulator: {stats['submits_accepted']} accepted, {stats['receipts_acked']} receipts acknowledged, "
        f"{cpu:.1f} s CPU in {wall:.1f} s ({100 * cpu / wall:.0f}% of a core)"
    )
    print(
        f"reference (node smpp client, window {args.window}, n={args.n}): {result['rate']:,.0f} msg/s "
        f"end to end with receipts ({result['submit_rate']:,.0f} msg/s to the last submit_sm_resp)"
    )


if __name__ == "__main__":
    main()
