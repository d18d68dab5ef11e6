"""SMS benchmark: the gateway end to end against the node reference, on one SMSC simulator.

    .venv/bin/python -m bench.sms                  # N = 100,000; rate test 200 msg/s for 60 s
    .venv/bin/python -m bench.sms -n 20000 --rate-seconds 20   # quicker

(a) reference: node-smpp's own client pushes N submit_sm (window 100) and waits for every receipt
    (`bench.smsc_reference.run_reference`); run before and again after (b), the figure their mean:
    this machine's speed drifts by a fifth within minutes, the two runs bracket the gateway's.
(b) the gateway: an action launched as POST /actions/{id}/launch does (`lifecycle.launch`, then
    `fanout.commit_and_publish`) to N participants (targeting, one message per number, the first
    ones committed and published at once, the rest in chunks meanwhile), sent by a separate
    `burgernet worker sms` process over one bind (window 100), receipts back, every status
    persisted in PostgreSQL; timed from the launch to the last message `delivered` in the database.
    Printed: both rates, the ratio b/a (goal >= 0.75), the time from the launch to the first
    submit the SMSC accepted, the worker's RSS before/after/peak, and where the CPU went, per
    message: the worker, the PostgreSQL backends, this process (the launch), the simulator — next
    to the reference's client and simulator — and how long the worker's event loop and the
    simulator's JavaScript thread were ready to run but waited for a CPU (/proc/<pid>/schedstat).
    On a machine with few cores these decide the ratio: a window of 100 makes each submit's round
    trip the pace, and every wait for a CPU on either side lengthens it.
(k) Kannel, the peer users would pick instead (bench/kannel.py: Debian's kannel, bearerbox +
    smsbox, one SMPP smsc to the same simulator, max-pending-submits 100, receipts to a dlr-url),
    N messages over concurrent HTTP sendsms, timed from the first request to the last receipt.
    Printed: its rate and `vs_kannel` = gateway msg/s ÷ Kannel msg/s (goal >= 1.5). `--no-kannel`
    leaves it out.
(c) the same worker with the bind limited to 200 msg/s for `--rate-seconds`: the achieved rate
    over the full seconds (goal: within 2% of 200) and the most submits the SMSC counted in any
    one second (must be <= 200).

Uses the PostgreSQL database `burgernet_bench_sms` (BENCH_SMS_PG_DB; recreated each run) and Redis
database 12 (BENCH_REDIS_URL; flushed). The machine is shared: figures are noisy; run it when nothing else is heavy.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import redis
from sqlalchemy import func, insert, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from smsc_sim import SmscSimulator, process_cpu_seconds  # noqa: E402

from bench.kannel import Kannel, KannelUnavailable, kannel_result  # noqa: E402
from bench.pg import fresh_database  # noqa: E402
from bench.smsc_reference import run_reference  # noqa: E402
from gateway.actions import lifecycle  # noqa: E402
from gateway.actions.fanout import commit_and_publish  # noqa: E402
from gateway.config import Settings  # noqa: E402
from gateway.queue import RedisStreamQueue, publish_messages  # noqa: E402
from gateway.storage.db import make_engine, session_factory  # noqa: E402
from gateway.storage.models import (  # noqa: E402
    Action,
    ActionType,
    Address,
    Centralist,
    Message,
    MessageStatus,
    Municipality,
    Participant,
)
from gateway.targeting.geo import tile_of  # noqa: E402

PG_DB = os.environ.get("BENCH_SMS_PG_DB", "burgernet_bench_sms")  # another name: runs side by side
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
CENTRE = (52.0907, 5.1214)
BURGERNET = Path(sys.executable).with_name("burgernet")


def pg_backends(database: str = PG_DB) -> dict[int, float]:
    """pid → CPU seconds of the PostgreSQL backends serving `database` (their process titles
    name it)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"postgres: ") and f" {database} ".encode() in title:
                found[int(entry.name)] = process_cpu_seconds(int(entry.name))
    return found


def cpu_wait_seconds(pid: int) -> float:
    """Seconds the main thread of process `pid` (the simulator's JavaScript thread, the worker's
    event loop) has spent ready to run but waiting for a CPU, from /proc; 0 once it is gone."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def own_cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def seed_participants(sessions, n: int) -> None:
    """n participants with distinct mobile numbers within 2 km of Utrecht's centre, all by SMS."""
    rng = random.Random(2026)
    with sessions() as s:
        town = Municipality(cbs_code="GM0344", name="Utrecht", region="Midden-Nederland")
        s.add(town)
        s.flush()
        for start in range(0, n, 10_000):
            count = min(10_000, n - start)
            ids = list(
                s.execute(
                    insert(Participant).returning(Participant.id),
                    [
                        {
                            "municipality_id": town.id,
                            "name": "P",
                            "phone": f"+316{20_000_000 + start + i:08d}",
                        }
                        for i in range(count)
                    ],
                ).scalars()
            )
            rows = []
            for pid in ids:
                lat = CENTRE[0] + rng.uniform(-0.012, 0.012)
                lon = CENTRE[1] + rng.uniform(-0.018, 0.018)
                rows.append(
                    {
                        "participant_id": pid,
                        "postcode": "3511 AB",
                        "house_number": "1",
                        "lat": lat,
                        "lon": lon,
                        "tile": tile_of(lat, lon),
                        "channel": "sms",
                    }
                )
            s.execute(insert(Address), rows)
        s.commit()


def draft_action(sessions, description: str) -> int:
    with sessions() as s:
        c = s.execute(select(Centralist)).scalars().first()
        if c is None:
            c = Centralist(name="Bench", meldkamer="Midden-Nederland", dial_string="PJSIP/4021@mk")
            s.add(c)
            s.flush()
        a = Action(
            type=ActionType.robbery,
            description=description,
            lat=CENTRE[0],
            lon=CENTRE[1],
            radius_m=3000,
            send_sms=True,
            send_voice=False,
            centralist_id=c.id,
        )
        s.add(a)
        s.commit()
        return a.id


def count_final(sessions, action_id: int) -> tuple[int, int]:
    with sessions() as s:
        rows = dict(
            s.execute(
                select(Message.status, func.count())
                .where(Message.action_id == action_id)
                .group_by(Message.status)
            ).all()
        )
    return rows.get(MessageStatus.delivered, 0), rows.get(MessageStatus.failed, 0)


class Worker:
    """`burgernet worker sms` as a subprocess, with its RSS sampled."""

    def __init__(self, pg_url: str, sim: SmscSimulator, log: Path, **bind) -> None:
        binds = json.dumps(
            [
                {
                    "name": "bench",
                    "operator": "sim",
                    "host": "127.0.0.1",
                    "port": sim.port,
                    "system_id": sim.system_id,
                    "password": sim.password,
                }
                | bind
            ]
        )
        env = os.environ | {
            "ENVIRONMENT": "development",
            "DATABASE_URL": pg_url,
            "REDIS_URL": REDIS_URL,
            "SMS_BINDS": binds,
        }
        self.proc = subprocess.Popen(
            [str(BURGERNET), "worker", "sms", "--name", "bench-sms"],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.peak = 0
        # Backends seen during the run, their CPU when last seen (they live as long as the pools).
        self.backends: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def rss(self) -> int:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except FileNotFoundError:
            pass
        return 0

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            self.peak = max(self.peak, self.rss())
            self.backends.update(pg_backends())

    def stop(self) -> None:
        self._stop.set()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class FirstSubmit:
    """When the SMSC accepted the launch's first submit: its counter polled every 10 ms from
    `started` (made right before the launch)."""

    def __init__(self, sim: SmscSimulator) -> None:
        self.started = self.seen = time.monotonic()
        self._thread = threading.Thread(target=self._watch, args=(sim,), daemon=True)
        self._thread.start()

    def _watch(self, sim: SmscSimulator) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if sim.stats(destinations=False)["submits_accepted"] > 0:
                self.seen = time.monotonic()
                return
            time.sleep(0.01)

    def after(self) -> float:
        """Seconds from the launch to the first accepted submit."""
        self._thread.join()
        return self.seen - self.started


def wait_until(predicate, timeout: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every)
    return value


def gateway_run(sessions, queue, settings, sim, n: int, log: Path) -> dict:
    worker = Worker(settings.database_url, sim, log)
    try:
        sim.wait_for(lambda s: len(s["binds"]) >= 1, 60, "the worker's bind")
        time.sleep(1.0)
        rss_before = worker.rss()
        action_id = draft_action(sessions, "Man met rode jas, fietst richting centrum.")
        cpu_before = {
            "worker": process_cpu_seconds(worker.proc.pid),
            "simulator": sim.cpu_seconds(),
            "launch": own_cpu(resource.RUSAGE_SELF),
        }
        backends_before = pg_backends()
        waited_before = {"worker": cpu_wait_seconds(worker.proc.pid), "simulator": cpu_wait_seconds(sim.pid)}
        first_submit = FirstSubmit(sim)
        started = first_submit.started
        with sessions() as s:
            counts = commit_and_publish(
                s, sessions, queue, lifecycle.launch(s, action_id, datetime.now(UTC), settings)
            )
        launched = time.monotonic() - started
        queued_count = counts.get("sms", 0)
        if queued_count != n:
            raise SystemExit(f"targeting queued {queued_count} messages, expected {n}")
        # Watch the SMSC until it has them all, then the database: counting the action's statuses
        # is a scan of its 100,000 rows (~40 ms), which polled all along loads the database the
        # run measures.
        wait_until(
            lambda: sim.stats(destinations=False)["submits_accepted"] >= n,
            max(600, n / 50),
            f"{n} submits at the SMSC",
        )
        wait_until(lambda: sum(count_final(sessions, action_id)) >= n, 600, f"{n} final statuses", every=0.05)
        elapsed = time.monotonic() - started
        waited = {
            "worker": cpu_wait_seconds(worker.proc.pid) - waited_before["worker"],
            "simulator": cpu_wait_seconds(sim.pid) - waited_before["simulator"],
        }
        cpu = {
            "worker": process_cpu_seconds(worker.proc.pid) - cpu_before["worker"],
            "PostgreSQL": sum(
                t - backends_before.get(pid, 0.0) for pid, t in (worker.backends | pg_backends()).items()
            ),
            "launch": own_cpu(resource.RUSAGE_SELF) - cpu_before["launch"],
            "simulator": sim.cpu_seconds() - cpu_before["simulator"],
        }
        delivered, failed = count_final(sessions, action_id)
        rss_after = worker.rss()
        return {
            "rate": n / elapsed,
            "seconds": elapsed,
            "launch_seconds": launched,
            "cpu": cpu,
            "waited": waited,
            "first_submit_seconds": first_submit.after(),
            "delivered": delivered,
            "failed": failed,
            "rss_before": rss_before,
            "rss_after": rss_after,
            "rss_peak": worker.peak,
        }
    finally:
        worker.stop()


def reference_run(sim, n: int) -> tuple[float, dict[str, float], float]:
    """The node reference's rate, the CPU seconds its client and the simulator spent, and the
    seconds the simulator's main thread waited for a CPU."""
    before = own_cpu(resource.RUSAGE_CHILDREN), sim.cpu_seconds(), cpu_wait_seconds(sim.pid)
    rate = run_reference(n, sim.port, sim.system_id, sim.password)
    return (
        rate,
        {"client": own_cpu(resource.RUSAGE_CHILDREN) - before[0], "simulator": sim.cpu_seconds() - before[1]},
        cpu_wait_seconds(sim.pid) - before[2],
    )


def kannel_run(sim, n: int, logs: Path) -> float | None:
    """Kannel's msg/s end to end through `sim`, or None (and why) when it cannot run here."""
    print("(k) Kannel: HTTP sendsms → bearerbox → SMSC → receipts → dlr-url …", flush=True)
    try:
        with Kannel(sim.port, sim.system_id, sim.password, logs) as kannel:
            started = {pid: process_cpu_seconds(pid) for pid in kannel.pids()}
            result = kannel_result(kannel, n)
            cpu = sum(process_cpu_seconds(pid) - before for pid, before in started.items())
    except KannelUnavailable as exc:
        print(f"    skipped: {exc}", flush=True)
        return None
    print(
        f"    {result['rate']:,.0f} msg/s ({result['seconds']:.1f} s; all accepted by smsbox after "
        f"{result['accepted_seconds']:.1f} s; {result['delivered']:,} delivered, {result['failed']} failed, "
        f"{result['refused']} refused and sent again); bearerbox + smsbox CPU {1e6 * cpu / n:.0f} µs a message",
        flush=True,
    )
    return result["rate"]


def per_message(cpu: dict[str, float], n: int, seconds: float) -> str:
    """ "worker 51 µs, …" and how busy the machine's cores were."""
    parts = ", ".join(f"{name} {1e6 * t / n:.0f} µs" for name, t in cpu.items())
    return f"{parts} (together {100 * sum(cpu.values()) / seconds:.0f}% of a core, {os.cpu_count()} cores)"


def rate_run(sessions, queue, settings, sim, rate: int, seconds: int, log: Path) -> dict:
    count = rate * seconds
    with sessions() as s:
        phones = list(s.execute(select(Participant.phone).order_by(Participant.id).limit(count)).scalars())
    action_id = draft_action(sessions, "Snelheidsproef.")
    with sessions() as s:
        from gateway.storage.models import Bulletin, BulletinKind

        b = Bulletin(
            action_id=action_id,
            kind=BulletinKind.alert,
            sms_text="Burgernet snelheidsproef.",
            spoken_text="-",
            fanned_out_at=datetime.now(UTC),
        )
        s.add(b)
        s.flush()
        ids = list(
            s.execute(
                insert(Message).returning(Message.id),
                [
                    {
                        "bulletin_id": b.id,
                        "action_id": action_id,
                        "phone": p,
                        "channel": "sms",
                        "status": MessageStatus.queued,
                    }
                    for p in phones
                ],
            ).scalars()
        )
        s.commit()
    worker = Worker(settings.database_url, sim, log, rate_per_second=rate)
    try:
        sim.wait_for(lambda st: len(st["binds"]) >= 1, 60, "the worker's bind")
        publish_messages(sessions, queue, {"sms": ids})
        wait_until(
            lambda: sum(count_final(sessions, action_id)) >= len(ids), seconds * 3 + 60, "the rate run"
        )
    finally:
        worker.stop()
    per_second = {int(k): v for k, v in sim.stats(destinations=False)["per_second"].items()}
    full = sorted(per_second)[1:-1]  # the first and last seconds are partial
    achieved = sum(per_second[k] for k in full) / len(full) if full else 0.0
    return {
        "achieved": achieved,
        "max_second": max(per_second.values()),
        "seconds": len(per_second),
        "messages": len(ids),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=100_000, help="recipients (default 100,000)")
    parser.add_argument("--rate", type=int, default=200, help="the limited bind's rate (default 200 msg/s)")
    parser.add_argument(
        "--rate-seconds", type=int, default=60, help="how long the rate test runs (default 60 s)"
    )
    parser.add_argument("--no-kannel", action="store_true", help="leave out the Kannel row")
    args = parser.parse_args()
    n = args.n
    logs = ROOT / ".cache" / "bench"
    logs.mkdir(parents=True, exist_ok=True)

    print(f"preparing: database {PG_DB}, {n:,} participants …", flush=True)
    pg_url = fresh_database(PG_DB)
    engine = make_engine(pg_url)
    sessions = session_factory(engine)
    seed_participants(sessions, n)
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    queue = RedisStreamQueue(REDIS_URL)
    settings = Settings(environment="development", database_url=pg_url, redis_url=REDIS_URL)

    with SmscSimulator(log_path=logs / "sms-smsc.log") as sim:
        print("(a) reference: node smpp client, window 100 …", flush=True)
        before, ref_cpu, ref_wait = reference_run(sim, n)
        print(
            f"    {before:,.0f} msg/s; CPU per message: {per_message(ref_cpu, n, n / before)}; the simulator "
            f"waited for a CPU {100 * ref_wait * before / n:.0f}% of the run",
            flush=True,
        )
        sim.reset()
        print("(b) gateway: launch → queue → worker sms → SMSC → receipts → PostgreSQL …", flush=True)
        gateway = gateway_run(sessions, queue, settings, sim, n, logs / "sms-worker.log")
        print(
            f"    {gateway['rate']:,.0f} msg/s ({gateway['seconds']:.1f} s; first submit at the SMSC "
            f"{gateway['first_submit_seconds']:.2f} s after the launch, all queued after {gateway['launch_seconds']:.1f} s; "
            f"{gateway['delivered']:,} delivered, {gateway['failed']} failed)"
        )
        mib = 1024 * 1024
        print(
            f"    worker RSS: {gateway['rss_before'] / mib:.0f} MiB before, {gateway['rss_after'] / mib:.0f} MiB after, "
            f"peak {gateway['rss_peak'] / mib:.0f} MiB (growth {(gateway['rss_after'] - gateway['rss_before']) / mib:+.0f} MiB "
            f"over {n:,} messages)"
        )
        print(f"    CPU per message: {per_message(gateway['cpu'], n, gateway['seconds'])}", flush=True)
        print(
            "    waiting for a CPU (main thread, share of the run): "
            + ", ".join(
                f"{name} {100 * t / gateway['seconds']:.0f}%" for name, t in gateway["waited"].items()
            ),
            flush=True,
        )
        sim.reset()
        kannel = None if args.no_kannel else kannel_run(sim, n, logs)
        sim.reset()
        print("(a) the reference again …", flush=True)
        after, ref_cpu, ref_wait = reference_run(sim, n)
        reference = (before + after) / 2
        print(
            f"    {after:,.0f} msg/s; CPU per message: {per_message(ref_cpu, n, n / after)}; the simulator "
            f"waited for a CPU {100 * ref_wait * after / n:.0f}% of the run; mean of both runs {reference:,.0f} msg/s",
            flush=True,
        )
        sim.reset()
        if args.rate_seconds > 0:
            print(f"(c) bind limited to {args.rate} msg/s for {args.rate_seconds} s …", flush=True)
            limited = rate_run(
                sessions, queue, settings, sim, args.rate, args.rate_seconds, logs / "sms-worker-rate.log"
            )
            deviation = 100 * (limited["achieved"] - args.rate) / args.rate
            print(
                f"    achieved {limited['achieved']:.1f} msg/s over the full seconds ({deviation:+.1f}% of {args.rate}); "
                f"most in any one second: {limited['max_second']} (limit {args.rate}); {limited['messages']:,} messages"
            )
    queue.close()
    client.flushdb()
    client.close()
    engine.dispose()
    ratio = gateway["rate"] / reference
    print(
        f"SMS n={n:,}: gateway {gateway['rate']:,.0f} msg/s vs node reference {reference:,.0f} msg/s: "
        f"ratio b/a {ratio:.2f} (goal >= 0.75)"
    )
    if kannel is not None:
        print(f"vs_kannel {gateway['rate'] / kannel:.2f} (gateway ÷ Kannel msg/s; goal >= 1.5)")


if __name__ == "__main__":
    main()
