"""The SMS worker's event-loop work per message, counted in instructions (a diagnostic for bench.sms).

    .venv/bin/python -m bench.sms_hotpath            # instructions a message, under valgrind (~1 min)
    .venv/bin/python -m bench.sms_hotpath --time     # CPU µs a message, plain (noisy)

bench.sms's figures swing with this machine's speed (its reference moved by a fifth within
minutes), so a change of a few percent in the worker cannot be seen there. This drives the
worker's own code for every message — the dispatcher, the bind's sender and reader, the receipt
path, the outcome writer with its acknowledgements — in one process, against a link that answers each
submit_sm at once with a submit_sm_resp and a delivery receipt captured from the node SMSC
simulator (tests/smsc). Left out: sockets, the database (`write_batch` returns at once) and the
queue. Counted by callgrind (valgrind): instructions, not seconds, so the same code gives the
same figure whatever else the machine does; the difference between two message counts removes
start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from gateway import collector  # noqa: E402
from gateway.sms import outcomes as O  # noqa: E402
from gateway.sms import pdu as P  # noqa: E402
from gateway.sms import worker as W  # noqa: E402
from gateway.sms.binds import load_sms_config  # noqa: E402
from gateway.sms.dispatch import cut  # noqa: E402
from gateway.sms.intake import DISPATCH_SLICE  # noqa: E402
from gateway.sms.store import BatchResult, Claimed  # noqa: E402

TEXT = "Burgernet: man met rode jas, fietst richting centrum. Bel 0800-0011, actiecode 4821."
SUBMIT_SM, SUBMIT_SM_RESP, DELIVER_SM, DELIVER_SM_RESP = 0x04, 0x80000004, 0x05, 0x80000005
COUNTS = (1500, 4500)  # messages in the two counted runs


def capture() -> tuple[bytes, bytes]:
    """A submit_sm_resp and the delivery receipt that follows it, from the node simulator."""
    from smsc_sim import SmscSimulator

    parts = cut(TEXT, 6)
    assert not isinstance(parts, str)
    (submit,) = P.Submits(parts.encoding, parts.chunks, P.Address("Burgernet", 5, 0)).pdus(
        P.Address.e164("+31620000001"), 1
    )
    with SmscSimulator() as sim, socket.create_connection(("127.0.0.1", sim.port), timeout=10) as sock:
        buffer = bytearray()

        def read() -> bytes:
            while len(buffer) < 4 or len(buffer) < int.from_bytes(buffer[:4], "big"):
                buffer.extend(sock.recv(65536))
            length = int.from_bytes(buffer[:4], "big")
            pdu = bytes(buffer[:length])
            del buffer[:length]
            return pdu

        sock.sendall(P.bind_pdu("transceiver", sim.system_id, sim.password, "", 1))
        read()
        sock.sendall(P.with_sequence(submit, 7))
        got: dict[int, bytes] = {}
        while len(got) < 2:
            pdu = read()
            got[P.parse_header(pdu[:16])[1]] = pdu
    return got[SUBMIT_SM_RESP], got[DELIVER_SM]


class AnsweringLink:
    """Stands in for the bind's socket: every submit_sm written is answered at once (the k-th
    with the k-th prepared response and receipt); deliver_sm_resps are counted."""

    def __init__(self, responses: list[bytes], receipts: list[bytes]) -> None:
        self.responses, self.receipts = responses, receipts
        self.incoming: deque[bytes] = deque()
        self.arrived = asyncio.Event()
        self.submits = self.acks = 0
        self.last_heard, self.enquiry_sent, self.sequence, self.broken = time.monotonic(), None, 1, None

    def write(self, data: bytes) -> None:
        at = 0
        while at < len(data):
            length, command = P.HEADER.unpack_from(data, at)[:2]
            if command == SUBMIT_SM:
                self.incoming.append(self.responses[self.submits])
                self.incoming.append(self.receipts[self.submits])
                self.submits += 1
            elif command == DELIVER_SM_RESP:
                self.acks += 1
            at += length
        self.arrived.set()

    async def drain(self) -> None:
        pass

    async def read_pdus(self) -> list[bytes]:
        while not self.incoming:
            self.arrived.clear()
            await self.arrived.wait()
        pdus = list(self.incoming)
        self.incoming.clear()
        return pdus

    def next_sequence(self) -> int:
        self.sequence += 1
        return 0x7FFFFFFF - self.sequence


def prepared(n: int, response: bytes, receipt: bytes) -> tuple[list[bytes], list[bytes]]:
    """n responses and receipts with SMSC ids of their own (the captured id replaced, same length);
    the k-th response carries sequence k + 1, as the bind numbers its submits."""
    smsc_id = P.parse_submit_resp(response).encode()
    width = len(smsc_id)
    responses, receipts = [], []
    for k in range(n):
        own = f"{k + 1:0{width}x}".encode()
        responses.append(P.with_sequence(response.replace(smsc_id, own), k + 1))
        receipts.append(P.with_sequence(receipt.replace(smsc_id, own), 0x10000 + k))
    return responses, receipts


async def drive(n: int, response: bytes, receipt: bytes) -> float:
    """Send n messages through the worker's code; returns the CPU seconds it took."""
    O.write_batch = lambda sessions, batch, worker, judge: BatchResult([], 0, 0)  # no database here
    config = load_sms_config(
        json.dumps(
            [
                {
                    "name": "hot",
                    "operator": "sim",
                    "host": "127.0.0.1",
                    "port": 1,
                    "system_id": "x",
                    "password": "y",
                }
            ]
        ),
        "",
        "",
    )
    worker = W.SmsWorker(None, None, config)  # type: ignore[arg-type]
    bind = worker.binds["hot"]
    link = AnsweringLink(*prepared(n, response, receipt))
    bind._tx = link  # type: ignore[assignment]
    bind._bound.set()
    tasks = [
        asyncio.create_task(bind._send(link)),
        asyncio.create_task(bind._read(link)),  # type: ignore[arg-type]
        asyncio.create_task(worker.writer.run()),
    ]
    collector.settle_after_start_up()  # as run_sms_worker does
    started = time.process_time()
    next_id = 0
    while link.acks < n:
        room = worker.intake.max_open - len(worker.open)
        if room <= 0 or next_id >= n:
            try:
                await asyncio.wait_for(worker.writer.next_write(), 0.05)
            except TimeoutError:
                pass
            continue
        # As SmsIntake.run hands over what a claim returned.
        claimed = [
            Claimed(10**6 + i, f"+3162{i:07d}", 1, TEXT)
            for i in range(next_id, min(n, next_id + 500, next_id + room))
        ]
        next_id += len(claimed)
        for item in claimed:
            worker.open[item.message_id] = item
        for start in range(0, len(claimed), DISPATCH_SLICE):
            if start:
                await asyncio.sleep(0)
            up = worker.dispatcher.up()
            for item in claimed[start : start + DISPATCH_SLICE]:
                worker.dispatcher.dispatch(item, up=up)
    spent = time.process_time() - started
    for task in tasks:
        task.cancel()
    if worker.counts.submitted != n:
        raise SystemExit(f"only {worker.counts.submitted} of {n} recorded as submitted")
    return spent


def counted(n: int, pdus: Path) -> int:
    """Instructions of a whole run with n messages, under callgrind."""
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "bench.sms_hotpath",
            "--run",
            str(n),
            "--pdus",
            str(pdus),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=os.environ | {"PYTHONHASHSEED": "0"},
    )  # the same dict layouts every run
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise SystemExit(f"callgrind gave no count:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--time", action="store_true", help="time 100,000 messages instead of counting instructions"
    )
    parser.add_argument("--run", type=int, help=argparse.SUPPRESS)  # one counted run (under valgrind)
    parser.add_argument("--pdus", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        both = args.pdus.read_bytes()  # the two PDUs back to back (each starts with its length)
        response, receipt = both[: int.from_bytes(both[:4], "big")], both[int.from_bytes(both[:4], "big") :]
        asyncio.run(drive(args.run, response, receipt))
        return
    response, receipt = capture()
    if args.time:
        n = 100_000
        spent = asyncio.run(drive(n, response, receipt))
        print(
            f"SMS worker hot path: {1e6 * spent / n:.1f} µs of CPU a message ({n:,} messages; noisy, see --help)"
        )
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind); or use --time")
    pdus = ROOT / ".cache" / "bench" / "sms-hotpath.pdus"
    pdus.parent.mkdir(parents=True, exist_ok=True)
    pdus.write_bytes(response + receipt)
    low, high = (counted(n, pdus) for n in COUNTS)
    print(
        f"SMS worker hot path: {(high - low) / (COUNTS[1] - COUNTS[0]):,.0f} instructions a message "
        f"(callgrind, {COUNTS[1]:,} − {COUNTS[0]:,} messages; git {_revision()})"
    )


def _revision() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "gateway"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        return head + ("+changes" if dirty else "")
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
