"""Voice benchmark: calls per hour through the real Asterisk against the limit 3600·C/L.

    .venv/bin/python -m bench.voice [--cap 20] [--seconds 10] [--calls 300]

With a cap of C simultaneous calls and every answered call lasting L seconds, no dialler can do
better than 3600·C/L calls per hour; the figure is the share of that limit the voice worker
reaches, from the launch of the action to the end of its last call, in one run.

What runs, all real: PostgreSQL (a fresh database `burgernet_bench_voice`, migrated), the action
launched through gateway.actions.lifecycle and published like the API does, the voice worker
(gateway.voice.worker) with its AMI client, Asterisk 22 (the tests' chroot, tests/asterisk_harness.py,
with the project's asterisk/ and dialplans/ — so the worker waits its turn while a test run holds
that Asterisk), dialplans/alert.conf with answering-machine detection on, and the FastAGI IVR
(`alert_call`, in a thread of this process) that plays the espeak-ng message and records how far
each participant listened. The phones are [test-phones] Local channels (tests/asterisk/
extensions_test.conf): each answers at once, says "Hallo?" (so AMD hears a person) and hangs up
L seconds after answering. Each ring is logged at the phones' side, so the run also shows that
nobody was called twice.

Also printed: the time from the launch to the first phone ringing, and TTS seconds per action on
the espeak-ng path (audio is made once per bulletin and language, never per call; the count of TTS
runs is shown). Figures are wall-clock on a shared machine: say so when quoting them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from bench.pg import fresh_database
from gateway.actions import lifecycle
from gateway.actions.fanout import commit_and_publish
from gateway.config import Settings
from gateway.queue import MemoryQueue
from gateway.storage.db import make_engine, session_factory
from gateway.storage.models import (
    Action,
    ActionType,
    Address,
    Centralist,
    Message,
    MessageStatus,
    Municipality,
    Participant,
)
from gateway.targeting.geo import tile_of
from gateway.tts import AudioCache, make_engines
from gateway.voice.ami import AMIClient
from gateway.voice.worker import VoiceWorker

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the tests' Asterisk harness and far-side sounds

from asterisk_harness import AsteriskServer, RawAMI, ensure_chroot  # noqa: E402
from phone_sounds import HUMAN, write_phone_sounds  # noqa: E402

DB_NAME = "burgernet_bench_voice"
AUDIO_DIR = "/var/lib/burgernet/audio"  # as Asterisk sees it, inside the chroot
PHONE_LOG = "tmp/test-phones.log"  # in the chroot: one line per ring
UTRECHT = (52.0907, 5.1214)
GOAL = 0.95


class TimedCache(AudioCache):
    """The worker's audio cache, counting and timing each synthesis request."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.runs: list[float] = []
        self.made_by: list[str] = []  # which engine made each file ("cached": none, it existed)

    def ensure(self, *args, **kw):
        started = time.perf_counter()
        try:
            result = super().ensure(*args, **kw)
        finally:
            self.runs.append(time.perf_counter() - started)
        self.made_by.append(result.engine or "cached")
        return result


@dataclass
class Timeline:
    launched: float = 0.0
    first_ring: float | None = None
    ended: list[float] = field(default_factory=list)  # each call's end (its channel hung up)
    rang: dict[str, float] = field(default_factory=dict)  # phone channel -> when it was made
    lasted: list[float] = field(default_factory=list)  # each phone channel's life, ring to hangup


def create_action(sessions, calls: int) -> int:
    """`calls` voice participants at one address in Utrecht and a draft action around it."""
    lat, lon = UTRECHT
    with sessions() as s:
        town = Municipality(cbs_code="GM0344", name="Utrecht", region="Midden-Nederland")
        centralist = Centralist(
            name="Bench", meldkamer="Midden-Nederland", dial_string="Local/answer@test-endpoints"
        )
        s.add_all([town, centralist])
        s.flush()
        for n in range(calls):
            p = Participant(municipality_id=town.id, name="P", phone=f"+3161200{n:04d}")
            p.addresses = [
                Address(
                    postcode="3511 AB",
                    house_number="1",
                    lat=lat,
                    lon=lon,
                    tile=tile_of(lat, lon),
                    channel="voice",
                )
            ]
            s.add(p)
        action = Action(
            type=ActionType.robbery,
            description="Bench: man met rode jas, fiets zonder licht.",
            lat=lat,
            lon=lon,
            radius_m=500,
            send_sms=False,
            send_voice=True,
            centralist_id=centralist.id,
        )
        s.add(action)
        s.commit()
        return action.id


def all_final(sessions) -> bool:
    with sessions() as s:
        return not s.scalar(
            select(Message.id)
            .where(Message.status.in_([MessageStatus.queued, MessageStatus.sending]))
            .limit(1)
        )


def set_globals(asterisk: AsteriskServer, **values: str) -> None:
    ami = RawAMI(asterisk.ami_host, asterisk.ami_port, timeout=30)
    try:
        ami.login(asterisk.ami_user, asterisk.ami_secret)
        for name, value in values.items():
            ami.action("Setvar", ("Variable", name), ("Value", value))
    finally:
        ami.close()


async def run(
    args, asterisk: AsteriskServer, sessions, cache: TimedCache, ivr_port: int
) -> tuple[Timeline, VoiceWorker]:
    settings = Settings(_env_file=None, environment="development")
    action_id = create_action(sessions, args.calls)
    queue = MemoryQueue()
    ami = AMIClient(asterisk.ami_host, asterisk.ami_port, asterisk.ami_user, asterisk.ami_secret)
    await ami.connect()
    worker = VoiceWorker(
        sessions,
        queue,
        ami,
        cache,
        max_calls=args.cap,
        retries=0,
        ring_seconds=30,
        dial_string=lambda call: f"Local/{call.phone.lstrip('+')}@test-phones",
        asterisk_audio_dir=AUDIO_DIR,
    )
    timeline = Timeline()
    done = asyncio.Event()

    async def watch(stream) -> None:  # the phones' side of each call: ;2 of Local/<n>@test-phones
        async for event in stream:
            channel = event.get("Channel", "")
            if "@test-phones-" not in channel or not channel.endswith(";2"):
                continue
            now = time.perf_counter()
            if event.name == "Newchannel":
                timeline.first_ring = timeline.first_ring or now
                timeline.rang[channel] = now
            elif event.name == "Hangup":
                timeline.ended.append(now)
                timeline.lasted.append(now - timeline.rang.pop(channel, now))
                if len(timeline.ended) == args.calls:
                    done.set()

    stream = ami.events("Newchannel", "Hangup")
    watcher = asyncio.create_task(watch(stream))
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop, poll_ms=100))
    timeline.launched = time.perf_counter()
    with sessions() as s:  # as POST /actions/{id}/launch does: commit, then publish
        commit_and_publish(s, sessions, queue, lifecycle.launch(s, action_id, datetime.now(UTC), settings))
    deadline = time.perf_counter() + args.calls / args.cap * (args.seconds + 5) * 3 + 120
    try:
        while not done.is_set():  # every call ended; or nothing left to call (a failure: reported below)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 2)
            if not done.is_set() and not timeline.rang and await asyncio.to_thread(all_final, sessions):
                break
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{len(timeline.ended)} of {args.calls} calls ended in time")
    finally:
        stop.set()
        await asyncio.wait_for(running, 120)
        stream.close()
        watcher.cancel()
        await ami.close()
    return timeline, worker


@contextlib.contextmanager
def asterisk_with_ivr(sessions, *, amd: str, hold_seconds: int):
    """The real Asterisk (the tests' chroot; waits while a test run holds it) and the FastAGI IVR
    on `sessions`, the test phones answering at once and hanging up `hold_seconds` after; yields
    (asterisk, the IVR's port, the audio directory on the host), both stopped after."""
    from ivr.context import IvrContext
    from ivr.handlers import registry
    from ivr.server import FastAGIServer

    asterisk = AsteriskServer(ensure_chroot(), turn_timeout=3600)
    asterisk.start()
    ctx = IvrContext(sessions, cache=None)
    server = FastAGIServer(("127.0.0.1", 0), registry(ctx))
    server.start_in_background()
    try:
        audio_dir = asterisk.chroot / AUDIO_DIR.lstrip("/")
        for stale in audio_dir.glob("*.wav"):  # bulletin ids restart with the fresh database
            stale.unlink()
        write_phone_sounds(asterisk.chroot)
        set_globals(
            asterisk,
            BN_IVR=f"agi://127.0.0.1:{server.server_address[1]}",
            BN_AMD=amd,
            PHONE_RING="0",
            PHONE_HOLD=str(hold_seconds),
            PHONE_SAY=HUMAN,
        )
        yield asterisk, server.server_address[1], audio_dir
    finally:
        ctx.tips.flush()
        server.shutdown()
        server.server_close()
        ctx.tips.close()
        asterisk.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.voice", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cap", type=int, default=20, help="simultaneous calls C (default 20)")
    parser.add_argument(
        "--seconds", type=int, default=10, help="how long each answered call lasts, L (default 10)"
    )
    parser.add_argument("--calls", type=int, default=300, help="participants called (default 300)")
    args = parser.parse_args(argv)
    if args.cap < 1 or args.seconds < 1 or args.calls < args.cap:
        parser.error("--cap >= 1, --seconds >= 1 and --calls >= --cap please")

    print(f"voice bench: {args.calls} calls, cap C={args.cap}, answered calls L={args.seconds} s", flush=True)
    url = fresh_database(DB_NAME)
    engine = make_engine(url)
    sessions = session_factory(engine)
    print("starting the real Asterisk (waits while a test run holds it)", flush=True)
    with asterisk_with_ivr(sessions, amd="yes", hold_seconds=args.seconds) as (asterisk, ivr_port, audio_dir):
        (asterisk.chroot / PHONE_LOG).write_text("")
        asterisk.run_in_chroot("chown", "asterisk:asterisk", f"/{PHONE_LOG}")
        cache = TimedCache(audio_dir, engines=make_engines("espeak"))
        timeline, worker = asyncio.run(run(args, asterisk, sessions, cache, ivr_port))
        rings = (asterisk.chroot / PHONE_LOG).read_text().split()
    with sessions() as s:
        statuses = s.execute(select(Message.status, Message.detail)).all()
    engine.dispose()

    answered = sum(status is MessageStatus.answered for status, _ in statuses)
    listened = sum(
        status is MessageStatus.answered and detail.startswith("listened") for status, detail in statuses
    )
    if len(timeline.ended) < args.calls:
        details = sorted({detail for _, detail in statuses})[:5]
        print(
            f"voice: only {len(timeline.ended)} of {args.calls} calls were made; message details: {details}"
        )
        return 1
    elapsed = timeline.ended[-1] - timeline.launched
    steady = timeline.ended[-1] - timeline.first_ring
    limit = 3600 * args.cap / args.seconds
    achieved = args.calls * 3600 / elapsed
    print(
        f"calls placed {worker.stats['originates']}, answered {answered} of {args.calls} "
        f"(IVR recorded 'listened …' on {listened}); rings at the phones {len(rings)}, "
        f"numbers rung twice {len(rings) - len(set(rings))}"
    )
    print(f"launch -> first phone ringing: {(timeline.first_ring - timeline.launched) * 1000:.0f} ms")
    print(
        f"TTS per action: {sum(cache.runs):.2f} s in {len(cache.runs)} run(s) for {args.calls} calls "
        f"(made by {', '.join(cache.made_by)}; espeak-ng only, as after a gTTS fallback)"
    )
    print(f"first ring -> last call ended: {steady:.1f} s ({args.calls * 3600 / steady:,.0f} calls/h)")
    print(f"launch -> last call ended: {elapsed:.1f} s; ideal {args.calls / args.cap * args.seconds:.1f} s")
    mean = sum(timeline.lasted) / len(timeline.lasted)
    print(
        f"phones: mean call {mean:.2f} s from ring to hangup (L = {args.seconds} s); "
        f"the C lines were busy {sum(timeline.lasted) / (args.cap * elapsed):.1%} of the time"
    )
    ratio = achieved / limit
    ok = ratio >= GOAL and answered == args.calls and len(rings) == len(set(rings)) == args.calls
    print(
        f"voice: {achieved:,.0f} calls/h vs limit 3600*C/L = {limit:,.0f} calls/h (C={args.cap}, L={args.seconds} s), "
        f"ratio {ratio:.3f} (goal >= {GOAL})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
