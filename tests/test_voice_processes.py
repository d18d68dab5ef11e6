"""`burgernet worker voice` as two real processes on one trunk: the cap on simultaneous calls is
shared through Redis (gateway/voice/lines.py), counted at the real Asterisk 22 from its own
channel events; one worker is killed with SIGKILL and its lines come back when their lease lapses."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
import test_voice_worker
from polling import until_async
from sqlalchemy import func, select
from test_voice_worker import AUDIO_DIR, answering, messages

from gateway.queue import DEFAULT_PREFIX, RedisStreamQueue
from gateway.storage.models import Bulletin, Message, MessageStatus
from gateway.voice.ami import AMIClient
from gateway.voice.store import WORKER_STOPPED
from gateway.voice.worker import line_key

voice = test_voice_worker.voice  # the fixture: real Asterisk, FastAGI servers, audio in its chroot
BURGERNET = Path(sys.executable).with_name("burgernet")
# The worker processes use the default key prefix: a Redis database where nothing else uses the
# voice keys (only those are deleted, before and after: other tests may share the database).
REDIS_DB = int(os.environ.get("TEST_REDIS_DB_VOICE", "13"))
CAP = 3
LEASE_SECONDS = 6  # longer than a call (HOLD 3 s): a killed worker's calls are over when its lines lapse


@pytest.fixture
def redis_db(redis_url):
    url = redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    client = redis.Redis.from_url(url, decode_responses=True)

    def forget_voice() -> None:
        for pattern in (f"{DEFAULT_PREFIX}queue:voice:*", line_key()):
            for key in client.scan_iter(pattern):
                client.delete(key)

    forget_voice()
    yield url, client
    forget_voice()
    client.close()


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BURGERNET), "worker", "voice"],
        env=os.environ | env,
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
    )


def lease_owner(pid: int) -> str:
    """The prefix of the line leases of the worker process `pid` (gateway.queue.worker_id)."""
    return f"voice-{socket.gethostname()[:40]}-{pid}:"


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_worker_processes_share_the_cap_and_a_killed_ones_lines_come_back(voice, redis_db, tmp_path):
    url, client = redis_db
    asterisk = voice.asterisk
    phones = [f"+3161300{n:04d}" for n in range(21)]
    answering(voice, phones)  # launched; the IVR answers and plays the message
    voice.set_globals(HOLD="3")  # each call: the message, three seconds, hang up
    with voice.sessions() as s:
        [bulletin] = s.scalars(select(Bulletin))
        ids = list(
            s.scalars(select(Message.id).where(Message.bulletin_id == bulletin.id).order_by(Message.id))
        )
    voice.audio.ensure(bulletin.id, bulletin.spoken_text, "nl")  # made once, not by both at once
    queue = RedisStreamQueue(url)
    queue.publish("voice", ids, flow=bulletin.id)
    queue.close()
    env = {
        "ENVIRONMENT": "development",
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": voice.sessions.kw["bind"].url.render_as_string(hide_password=False),
        "REDIS_URL": url,
        "AMI_HOST": asterisk.ami_host,
        "AMI_PORT": str(asterisk.ami_port),
        "AMI_USER": asterisk.ami_user,
        "AMI_SECRET": asterisk.ami_secret,
        "AUDIO_DIR": str(asterisk.chroot / AUDIO_DIR.lstrip("/")),
        "TTS_ENGINES": "espeak",
        "VOICE_ASTERISK_AUDIO_DIR": AUDIO_DIR,
        "VOICE_DIAL_TEMPLATE": "Local/answer@test-endpoints",
        "VOICE_MAX_CALLS": str(CAP),
        "VOICE_RETRIES": "0",
        "VOICE_RING_SECONDS": "5",
        "VOICE_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    log = tmp_path / "workers.log"
    calls_up: list[tuple[float, int]] = []  # (when, calls up at Asterisk after that event)

    def final() -> int:
        with voice.sessions() as s:
            return s.scalar(select(func.count()).where(Message.final_at.is_not(None)))

    def leases_of(pid: int) -> int:
        return sum(m.startswith(lease_owner(pid)) for m in client.zrange(line_key(), 0, -1))

    async def count_calls(ami: AMIClient) -> None:
        # The calls are the outgoing halves (;1) of the Local channels, in wire order.
        up: set[str] = set()
        async for event in ami.events("Newchannel", "Hangup"):
            if event["Channel"].startswith("Local/answer@") and event["Channel"].endswith(";1"):
                (up.add if event.name == "Newchannel" else up.discard)(event["Uniqueid"])
                calls_up.append((time.monotonic(), len(up)))

    def state(what: str):
        """`what` and, at the moment of a timeout, the messages, the leases and the workers' log."""
        return lambda: (
            f"{what}: {final()} final, leases {client.zrange(line_key(), 0, -1)}, "
            f"{Counter((m.status.value, m.detail) for m in messages(voice).values())}\n"
            f"{log.read_text()[-3000:]}"
        )

    async def scenario() -> tuple[float, float]:
        ami = AMIClient(asterisk.ami_host, asterisk.ami_port, asterisk.ami_user, asterisk.ami_secret)
        await ami.connect()
        counting = asyncio.create_task(count_calls(ami))
        workers = [start_worker(env, log), start_worker(env, log)]
        try:
            # Whichever worker holds a line once six calls are done is killed on it: which of the
            # two that is depends on who was quicker to the freed lines, not on the test.
            on_a_line: list[subprocess.Popen] = []

            def six_done_and_one_on_a_line() -> bool:
                on_a_line[:] = [w for w in workers if leases_of(w.pid)] if final() >= 6 else []
                return bool(on_a_line)

            await until_async(
                six_done_and_one_on_a_line,
                90,
                state("six calls done and a worker on a line"),
                every=0.1,
                blocking=True,
            )
            victim = on_a_line[0]
            victim.send_signal(signal.SIGKILL)  # with calls up: its leases stay in Redis
            victim.wait(10)
            killed_at = time.monotonic()
            await until_async(
                lambda: leases_of(victim.pid) == 0,
                3 * LEASE_SECONDS,
                state("the killed worker's lines to lapse"),
                every=0.1,
                blocking=True,
            )
            lapsed_at = time.monotonic()
            await until_async(
                lambda: final() == len(phones), 120, state("every message final"), every=0.1, blocking=True
            )
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
                    worker.wait(30)
            counting.cancel()
            await ami.close()
        return killed_at, lapsed_at

    killed_at, lapsed_at = asyncio.run(asyncio.wait_for(scenario(), 300))
    assert lapsed_at - killed_at > LEASE_SECONDS / 2  # held while they lasted, not given back by anyone
    most = max(n for _, n in calls_up)
    assert most == CAP, f"at most {CAP} calls at once across both workers, saw {most}"
    after_lapse = [n for at, n in calls_up if at > lapsed_at]
    assert max(after_lapse) == CAP, "the killed worker's lines did not come back"  # the survivor uses all
    got = messages(voice)
    by_worker = {}
    with voice.sessions() as s:
        for worker, count in s.execute(select(Message.claimed_by, func.count()).group_by(Message.claimed_by)):
            by_worker[worker] = count
    assert len(by_worker) == 2 and all(count >= 1 for count in by_worker.values()), by_worker  # both worked
    report = sorted((m.status.value, m.detail) for m in got.values())
    assert all(m.status in (MessageStatus.answered, MessageStatus.failed) for m in got.values()), report
    failed = [m for m in got.values() if m.status is MessageStatus.failed]
    assert all(m.detail == WORKER_STOPPED for m in failed) and len(failed) <= CAP, (
        report
    )  # dialled by the dead
