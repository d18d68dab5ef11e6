"""Housekeeping as its own service (gateway/housekeeping.py, `burgernet housekeeping`): one runner
at a time through a PostgreSQL advisory lock, a takeover when the holder dies, the run under way
finished on stop — and the real command, twice at once, expiring an action exactly once."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from polling import until
from sqlalchemy import select, text, update

from gateway.housekeeping import HousekeepingLock, run_housekeeping
from gateway.storage.db import make_engine
from gateway.storage.models import Action, ActionStatus

# A key of its own: the real service's lock may be held by another test run on this server.
TEST_KEY = 0x0B0E7E57


@pytest.fixture
def pg_engine(pg_url):
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


def test_one_holder_at_a_time_and_the_lock_goes_with_its_connection(pg_engine):
    first, second = HousekeepingLock(pg_engine, TEST_KEY), HousekeepingLock(pg_engine, TEST_KEY)
    try:
        assert first.acquire()
        assert not second.acquire()
        assert first.still_held()
        # The holder's database connection dies (a crashed process, a restarted pooler).
        with pg_engine.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = :k"
                ),
                {"k": TEST_KEY},
            )
            conn.commit()
        assert not first.still_held()
        assert second.acquire()
    finally:
        first.release()
        second.release()


def test_sqlite_needs_no_lock(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert HousekeepingLock(engine).acquire()
    engine.dispose()


def test_two_runners_one_works_the_other_takes_over_when_it_stops(pg_engine):
    runs: list[str] = []

    def job(name):
        def run():
            runs.append(name)
            time.sleep(0.05)  # a run under way when stop comes is finished, not cut

        return run

    async def scenario():
        stop_a, stop_b = asyncio.Event(), asyncio.Event()
        a = asyncio.create_task(
            run_housekeeping(
                HousekeepingLock(pg_engine, TEST_KEY), [("j", 0.05, job("a"))], stop_a, retry_seconds=0.1
            )
        )
        await asyncio.sleep(0.3)
        b = asyncio.create_task(
            run_housekeeping(
                HousekeepingLock(pg_engine, TEST_KEY), [("j", 0.05, job("b"))], stop_b, retry_seconds=0.1
            )
        )
        await asyncio.sleep(0.5)
        assert set(runs) == {"a"}, "the second runner worked while the first held the lock"
        stop_a.set()
        await asyncio.wait_for(a, 5)
        ended_a = len(runs)
        await asyncio.sleep(0.6)
        assert "b" in runs[ended_a:], "the second runner did not take over"
        assert "a" not in runs[ended_a:]
        stop_b.set()
        await asyncio.wait_for(b, 5)

    asyncio.run(scenario())


def test_burgernet_housekeeping_twice_expires_once_and_stops_on_sigterm(api, pg_url, redis_url, key_prefix):
    if api.sessions.kw["bind"].dialect.name != "postgresql":
        pytest.skip("the service runs on PostgreSQL")
    api.register("+31612345001", "+31612345002")
    action = api.launch()
    with api.sessions() as s:  # its time is up
        s.execute(
            update(Action)
            .where(Action.id == action["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        s.commit()
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "SECRET_KEY": api.settings.secret_key,
        "DATABASE_URL": pg_url.replace("postgresql+psycopg://", "postgresql://"),
        "REDIS_URL": redis_url,
        "EXPIRY_CHECK_SECONDS": "0.2",
    }
    runners = [
        subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "housekeeping"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:

        def closed() -> bool:
            with api.sessions() as s:
                return s.scalar(select(Action.status).where(Action.id == action["id"])) == ActionStatus.closed

        until(closed, 20, "the action closed", every=0.2)
        time.sleep(1)  # both have had several expiry rounds
    finally:
        for runner in runners:  # both at once: neither takes over from the other on the way out
            runner.send_signal(signal.SIGTERM)
        logs = []
        for runner in runners:
            _, err = runner.communicate(timeout=20)
            assert runner.returncode == 0, err[-2000:]
            logs.append(err)
    with api.sessions() as s:
        assert s.scalar(select(Action.status).where(Action.id == action["id"])) == ActionStatus.closed
    assert sum("this process runs the periodic jobs" in log for log in logs) == 1
    assert sum("expired 1 action(s)" in log for log in logs) == 1
