"""Concurrent actions: a missing child launched behind a big action's backlog, SMS and voice.

    .venv/bin/python -m bench.contention            # both parts, by urgency (the gateway's order)
    .venv/bin/python -m bench.contention --fifo     # the same in queue order (as before scheduling)
    .venv/bin/python -m bench.contention --part sms --sms-a 20000   # quicker

SMS: one bind limited to 500 msg/s, a `burgernet worker sms` process (this module's own entry,
so that `--fifo` can hand it the queue's order) against the node SMSC simulator, PostgreSQL and
Redis. Action A (a robbery, 100,000 recipients) is launched; 10 s later action B (a missing
person, 2,000 recipients). From the SMSC's own accept log: B's first SMS after B's launch, B's
completion against its ideal at its configured share (8 of 8 + 4 of the bind), everything's
completion against the physical limit (recipients / rate), and the most SMS accepted in any
sliding second.

Voice: the real Asterisk (the tests' chroot) with the project's dialplans and IVR, C = 20 lines,
phones that answer and hang up L = 10 s later. A with 600 voice recipients, B with 60 launched
10 s later: B's first call after its launch, and the total against calls × L / C.

The last line: `contention: sms_first … s (goal <= 1); sms_share … (goal <= 1.1); voice_first …
s (goal <= 2); total … (goal <= 1.02); sliding_max … (limit 500)`, `total` the worse of the two
channels. Wall-clock figures on a shared machine: run it when nothing else is heavy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import redis
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from bench.pg import fresh_database  # noqa: E402
from gateway.actions import lifecycle  # noqa: E402
from gateway.actions.fanout import commit_and_publish  # noqa: E402
from gateway.config import Settings  # noqa: E402
from gateway.queue import RedisStreamQueue  # noqa: E402
from gateway.storage.db import make_engine, session_factory  # noqa: E402
from gateway.storage.models import (  # noqa: E402
    Action,
    ActionType,
    Address,
    Centralist,
    Municipality,
    Participant,
    Urgency,
)
from gateway.targeting.geo import tile_of  # noqa: E402

PG_DB = "burgernet_bench_contention"
REDIS_URL = os.environ.get("BENCH_CONTENTION_REDIS_URL", "redis://127.0.0.1:6379/13")
RATE = 500
WEIGHT_A, WEIGHT_B = 4, 8  # high (a robbery) and critical (a missing person): SCHEDULE_WEIGHTS' defaults
UTRECHT = (52.0907, 5.1214)
AMERSFOORT = (52.1561, 5.3878)  # B's incident: 20 km away, so its circle holds only its own people


def seed(sessions, centre: tuple[float, float], first_phone: int, n: int, channel: str, town: int) -> None:
    """n participants with distinct numbers at addresses within ~1 km of `centre`."""
    lat, lon = centre
    with sessions() as s:
        for start in range(0, n, 10_000):
            count = min(10_000, n - start)
            ids = list(
                s.execute(
                    insert(Participant).returning(Participant.id),
                    [
                        {"municipality_id": town, "name": "P", "phone": f"+316{first_phone + start + i:08d}"}
                        for i in range(count)
                    ],
                ).scalars()
            )
            s.execute(
                insert(Address),
                [
                    {
                        "participant_id": pid,
                        "postcode": "3511 AB",
                        "house_number": "1",
                        "lat": lat + (i % 100) * 1e-4,
                        "lon": lon + (i // 100 % 100) * 1e-4,
                        "tile": tile_of(lat, lon),
                        "channel": channel,
                    }
                    for i, pid in enumerate(ids)
                ],
            )
        s.commit()


def world(sessions, sizes: dict[str, int], channel: str) -> dict[str, int]:
    """The participants of A and B and their two draft actions; returns the actions' ids."""
    with sessions() as s:
        town = Municipality(cbs_code="GM0344", name="Utrecht", region="Midden-Nederland")
        centralist = Centralist(
            name="Bench", meldkamer="Midden-Nederland", dial_string="Local/answer@test-endpoints"
        )
        s.add_all([town, centralist])
        s.commit()
        town_id, centralist_id = town.id, centralist.id
    seed(sessions, UTRECHT, 20_000_000, sizes["A"], channel, town_id)
    seed(sessions, AMERSFOORT, 30_000_000, sizes["B"], channel, town_id)
    actions = {}
    with sessions() as s:
        for name, centre, type_ in (
            ("A", UTRECHT, ActionType.robbery),
            ("B", AMERSFOORT, ActionType.missing_person),
        ):
            action = Action(
                type=type_,
                urgency=Urgency.for_type(type_),
                description=f"Bench {name}.",
                lat=centre[0],
                lon=centre[1],
                radius_m=3000,
                send_sms=channel == "sms",
                send_voice=channel == "voice",
                centralist_id=centralist_id,
            )
            s.add(action)
            s.flush()
            actions[name] = action.id
        s.commit()
    return actions


def launch(sessions, queue, settings, action_id: int) -> float:
    """As POST /actions/{id}/launch does; returns the wall-clock time it was asked."""
    asked = time.time()
    with sessions() as s:
        commit_and_publish(s, sessions, queue, lifecycle.launch(s, action_id, datetime.now(UTC), settings))
    return asked


def busiest_second(times: list[float]) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


# --- SMS -----------------------------------------------------------------------------------------


def sms_part(args) -> dict[str, float]:
    from smsc_sim import SmscSimulator

    sizes = {"A": args.sms_a, "B": args.sms_b}
    url = fresh_database(PG_DB)
    engine = make_engine(url)
    sessions = session_factory(engine)
    redis.Redis.from_url(REDIS_URL).flushdb()
    queue = RedisStreamQueue(REDIS_URL)
    actions = world(sessions, sizes, "sms")
    settings = Settings(_env_file=None, environment="development", database_url=url)
    log = Path(args.log_dir) / "contention-sms-worker.log"
    with SmscSimulator(log_path=Path(args.log_dir) / "contention-smsc.log") as sim:
        binds = json.dumps(
            [
                {
                    "name": "bench",
                    "operator": "sim",
                    "host": "127.0.0.1",
                    "port": sim.port,
                    "system_id": sim.system_id,
                    "password": sim.password,
                    "rate_per_second": RATE,
                }
            ]
        )
        env = os.environ | {
            "ENVIRONMENT": "development",
            "DATABASE_URL": url,
            "REDIS_URL": REDIS_URL,
            "SMS_BINDS": binds,
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", "bench.contention", "sms-worker", *(["--fifo"] if args.fifo else [])],
            env=env,
            cwd=ROOT,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        try:
            sim.wait_for(lambda s: len(s["binds"]) >= 1, 60, "the worker's bind")
            total = sum(sizes.values())
            started = launch(sessions, queue, settings, actions["A"])
            time.sleep(max(0.0, started + args.delay - time.time()))
            launched_b = launch(sessions, queue, settings, actions["B"])
            sim.wait_for(
                lambda s: s["submits_accepted"] >= total, total / RATE * 3 + 120, f"{total} accepted submits"
            )
            accepts = sim.accepts()
        finally:
            worker.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(30)
            if worker.poll() is None:
                worker.kill()
    queue.close()
    engine.dispose()
    if args.accepts:  # for a closer look: every accept's time and destination
        Path(args.accepts).write_text(
            json.dumps({"started": started, "launched_b": launched_b, "accepts": accepts})
        )
    b_phones = {f"+316{30_000_000 + i:08d}" for i in range(sizes["B"])}
    b_times = [t for t, dest in accepts if dest in b_phones]
    ideal_b = sizes["B"] / (RATE * WEIGHT_B / (WEIGHT_A + WEIGHT_B))
    figures = {
        "sms_first": min(b_times) - launched_b,
        "sms_share": (max(b_times) - launched_b) / ideal_b,
        "sms_total": (max(t for t, _ in accepts) - started) / (total / RATE),
        "sliding_max": busiest_second([t for t, _ in accepts]),
        "twice": sum(n > 1 for n in _counts(accepts).values()),
    }
    print(
        f"SMS: A {sizes['A']:,} then B {sizes['B']:,} {args.delay:.0f} s later at {RATE}/s "
        f"({'queue order' if args.fifo else 'by urgency'}): B's first SMS {figures['sms_first']:.2f} s after its launch, "
        f"B done in {max(b_times) - launched_b:.1f} s (ideal at its share {ideal_b:.1f} s: {figures['sms_share']:.2f}); "
        f"all done in {max(t for t, _ in accepts) - started:.1f} s (limit {total / RATE:.1f} s: {figures['sms_total']:.3f}); "
        f"busiest sliding second {figures['sliding_max']}; numbers sent twice {figures['twice']}",
        flush=True,
    )
    return figures


def _counts(accepts) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, dest in accepts:
        counts[dest] = counts.get(dest, 0) + 1
    return counts


def sms_worker(fifo: bool) -> None:
    """The worker process of the SMS part: `burgernet worker sms`, in queue order with --fifo."""
    from gateway.config import get_settings
    from gateway.queue.base import oldest_first
    from gateway.sms.worker import run_sms_worker

    asyncio.run(
        run_sms_worker(get_settings(), worker_id="bench-contention", plan=oldest_first if fifo else None)
    )


# --- voice ---------------------------------------------------------------------------------------


def voice_part(args) -> dict[str, float]:
    from bench.voice import asterisk_with_ivr
    from gateway.tts import AudioCache, make_engines

    url = fresh_database(PG_DB)
    engine = make_engine(url)
    sessions = session_factory(engine)
    sizes = {"A": args.voice_a, "B": args.voice_b}
    actions = world(sessions, sizes, "voice")
    try:
        with asterisk_with_ivr(sessions, amd="no", hold_seconds=args.seconds) as (asterisk, _, audio_dir):
            audio = AudioCache(audio_dir, engines=make_engines("espeak"))
            placed, ended, launched = asyncio.run(_voice_run(args, asterisk, sessions, audio, actions))
    finally:
        engine.dispose()
    b_phones = {f"+316{30_000_000 + i:08d}" for i in range(sizes["B"])}
    first_b = min(at for at, phone in placed if phone in b_phones)
    calls = sum(sizes.values())
    limit = calls * args.seconds / args.cap
    figures = {
        "voice_first": first_b - launched["B"],
        "voice_total": (max(ended) - launched["A"]) / limit,
        "voice_twice": len(placed) - len({phone for _, phone in placed}),
    }
    print(
        f"voice: A {sizes['A']} then B {sizes['B']} {args.delay:.0f} s later, C={args.cap}, L={args.seconds} s "
        f"({'queue order' if args.fifo else 'by urgency'}): B's first call {figures['voice_first']:.2f} s after its launch; "
        f"all ended in {max(ended) - launched['A']:.1f} s (limit {limit:.0f} s: {figures['voice_total']:.3f}); "
        f"numbers called twice {figures['voice_twice']}",
        flush=True,
    )
    return figures


async def _voice_run(args, asterisk, sessions, audio, actions):
    from bench.voice import AUDIO_DIR
    from gateway.queue import MemoryQueue
    from gateway.queue.base import oldest_first
    from gateway.queue.flows import planner
    from gateway.voice.ami import AMIClient
    from gateway.voice.worker import VoiceWorker

    settings = Settings(_env_file=None, environment="development")
    queue = MemoryQueue()
    ami = AMIClient(asterisk.ami_host, asterisk.ami_port, asterisk.ami_user, asterisk.ami_secret)
    await ami.connect()
    placed: list[tuple[float, str]] = []  # wall-clock time each call was placed, and to whom
    ended: list[float] = []

    def dial(call) -> str:
        placed.append((time.time(), call.phone))
        return f"Local/{call.phone.lstrip('+')}@test-phones"

    worker = VoiceWorker(
        sessions,
        queue,
        ami,
        audio,
        max_calls=args.cap,
        retries=0,
        ring_seconds=30,
        dial_string=dial,
        asterisk_audio_dir=AUDIO_DIR,
        plan=oldest_first if args.fifo else planner(sessions, settings.schedule_weights),
    )
    calls = args.voice_a + args.voice_b

    async def watch(stream) -> None:
        async for event in stream:
            channel = event.get("Channel", "")
            if "@test-phones-" in channel and channel.endswith(";2"):
                ended.append(time.time())

    stream = ami.events("Hangup")
    watcher = asyncio.create_task(watch(stream))
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop, poll_ms=100))
    launched = {"A": await asyncio.to_thread(launch, sessions, queue, settings, actions["A"])}
    await asyncio.sleep(max(0.0, launched["A"] + args.delay - time.time()))
    launched["B"] = await asyncio.to_thread(launch, sessions, queue, settings, actions["B"])
    deadline = time.time() + calls * args.seconds / args.cap * 3 + 120
    try:
        while len(ended) < calls and time.time() < deadline:
            await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.wait_for(running, 120)
        stream.close()
        watcher.cancel()
        await ami.close()
    if len(ended) < calls:
        raise SystemExit(f"voice: only {len(ended)} of {calls} calls ended in time")
    return placed, ended, launched


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.contention", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "command", nargs="?", default="run", choices=["run", "sms-worker"], help=argparse.SUPPRESS
    )
    parser.add_argument("--fifo", action="store_true", help="queue order instead of urgency (the comparison)")
    parser.add_argument("--part", choices=["sms", "voice", "both"], default="both")
    parser.add_argument("--sms-a", type=int, default=100_000)
    parser.add_argument("--sms-b", type=int, default=2_000)
    parser.add_argument("--voice-a", type=int, default=600)
    parser.add_argument("--voice-b", type=int, default=60)
    parser.add_argument("--cap", type=int, default=20, help="voice lines C")
    parser.add_argument("--seconds", type=int, default=10, help="answered call length L")
    parser.add_argument("--delay", type=float, default=10.0, help="seconds from A's launch to B's")
    parser.add_argument("--log-dir", default="/tmp")
    parser.add_argument("--accepts", help="write the SMSC's accept log (JSON) to this file")
    args = parser.parse_args(argv)
    if args.command == "sms-worker":
        sms_worker(args.fifo)
        return 0
    figures: dict[str, float] = {}
    if args.part in ("sms", "both"):
        figures |= sms_part(args)
    if args.part in ("voice", "both"):
        figures |= voice_part(args)
    total = max(v for k, v in figures.items() if k.endswith("_total"))
    parts = []
    if "sms_first" in figures:
        parts += [
            f"sms_first {figures['sms_first']:.1f} s (goal <= 1)",
            f"sms_share {figures['sms_share']:.2f} (goal <= 1.1)",
        ]
    if "voice_first" in figures:
        parts.append(f"voice_first {figures['voice_first']:.1f} s (goal <= 2)")
    parts.append(f"total {total:.2f} (goal <= 1.02)")
    if "sliding_max" in figures:
        parts.append(f"sliding_max {figures['sliding_max']} (limit {RATE})")
    print("contention: " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
