"""Concurrent actions share a bind by urgency (gateway/queue/schedule.py), against the independent
SMSC, PostgreSQL and Redis: a missing child never waits for a shop theft's backlog, every action's
share holds, and the contracted rate holds in every sliding second of the SMSC's own accept times.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import redis.asyncio as aredis
from polling import until, until_async
from sms_world import (
    all_final,
    bind_json,
    make_worker,
    open_action,
    phone,
    queue_messages,
    running,
    statuses,
)
from sqlalchemy import update
from test_sms_processes import all_final as proc_all_final
from test_sms_processes import processes_world, start_worker, stop

from gateway.queue import RedisStreamQueue
from gateway.sms.ratelimit import BindRateLimit
from gateway.storage.models import Action, MessageStatus, Urgency

# A CPU hog beside the worker: the sends are woken late, the rate must hold all the same.
HOG = "import time\nend = time.monotonic() + float(__import__('sys').argv[1])\nwhile time.monotonic() < end: pass\n"


CODES: list[int] = []  # action codes are unique among open actions
# The worker processes' Redis database (they use the default key prefix): not test_sms_processes'.
REDIS_DB = int(os.environ.get("TEST_REDIS_DB_CONTENTION", "12"))  # another for a parallel run


@pytest.fixture
def queue(redis_url, key_prefix):
    q = RedisStreamQueue(redis_url, prefix=key_prefix, claim_idle_ms=60_000)
    yield q
    q.close()


def action_with(sessions, queue, urgency: Urgency, phones: list[str]) -> tuple[int, list[str]]:
    """An open action of that urgency whose alert is queued to `phones`; (action id, phones)."""
    action, bulletin = open_action(sessions, code=str(1000 + len(CODES)))
    CODES.append(action)
    with sessions() as s, s.begin():
        s.execute(update(Action).where(Action.id == action).values(urgency=urgency))
    queue_messages(sessions, queue, action, bulletin, phones)
    return action, phones


@pytest.fixture
def world(pg_url, redis_url):
    yield from processes_world(pg_url, redis_url, REDIS_DB)


def busiest_window(times: list[float], width: float = 1.0) -> int:
    """The most accepts in any sliding window of `width` seconds."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= width:
            start += 1
        best = max(best, end - start + 1)
    return best


def rate_limited(redis_url: str, key_prefix: str, rate: int):
    client = aredis.Redis.from_url(redis_url)
    return client, {"sim1": BindRateLimit(client, "sim1", rate, prefix=key_prefix)}


@pytest.mark.slow
@pytest.mark.parametrize("cpu_hog", [False, True], ids=["quiet", "busy-cpu"])
def test_a_missing_child_goes_out_within_a_second_behind_a_backlog(
    pg_sessions, queue, smsc, redis_url, key_prefix, cpu_hog
):
    """A shop theft has 2,400 SMS queued at a 200/s bind; a missing child launched 1.5 s into it
    has its first SMS at the SMSC within a second, then gets two thirds of the bind (8 : 4)
    until it is done; both complete, each number once, never above 200 in any sliding second."""
    rate, sessions = 200, pg_sessions
    _, theft = action_with(sessions, queue, Urgency.high, [phone(i) for i in range(2400)])
    child_phones = [phone(100_000 + i) for i in range(300)]
    hog = subprocess.Popen([sys.executable, "-c", HOG, "30"]) if cpu_hog else None

    async def scenario() -> float:
        client, limits = rate_limited(redis_url, key_prefix, rate)
        try:
            worker = make_worker(sessions, queue, smsc, rate_limits=limits, bind={"rate_per_second": rate})
            async with running(worker):
                await until_async(
                    lambda: smsc.stats(destinations=False)["submits_accepted"] >= 300,
                    30,
                    "300 accepted",
                    0.1,
                    blocking=True,
                )
                launched = time.time()
                await asyncio.to_thread(action_with, sessions, queue, Urgency.critical, child_phones)
                await until_async(all_final(sessions, 2700), 60, "2,700 final statuses", 0.1, blocking=True)
            return launched
        finally:
            await client.aclose()

    try:
        launched = asyncio.run(scenario())
    finally:
        if hog is not None:
            hog.kill()
    accepts = smsc.accepts()
    child = set(child_phones)
    first_child = min(t for t, dest in accepts if dest in child)
    last_child = max(t for t, dest in accepts if dest in child)
    assert first_child - launched <= 1.0, (
        f"the child's first SMS {first_child - launched:.2f} s after its launch"
    )
    # While both waited, the child had its weight's share of what the SMSC accepted.
    during = [dest in child for t, dest in accepts if first_child <= t <= last_child]
    assert sum(during) / len(during) == pytest.approx(8 / 12, rel=0.1)
    assert busiest_window([t for t, _ in accepts]) <= rate
    stats = smsc.stats()
    assert {p: stats["by_destination"][p]["submits"] for p in theft + child_phones} == dict.fromkeys(
        theft + child_phones, 1
    )
    assert statuses(sessions)[MessageStatus.delivered] == 2700
    print(
        f"\nchild's first SMS {first_child - launched:.2f} s after launch; share {sum(during) / len(during):.3f}; "
        f"busiest sliding second {busiest_window([t for t, _ in accepts])}"
    )


@pytest.mark.slow
def test_three_urgencies_share_the_bind_by_weight_and_the_lowest_still_moves(
    pg_sessions, queue, smsc, redis_url, key_prefix
):
    """Critical, high and routine alerts all waiting at a 300/s bind: over a 10 s window each gets
    its weight's share (8 : 4 : 1) within 10%, and the routine one keeps moving."""
    rate, sessions = 300, pg_sessions
    sizes = {Urgency.critical: 2500, Urgency.high: 1500, Urgency.routine: 600}
    owner: dict[str, Urgency] = {}
    start = 0
    for urgency, n in sizes.items():
        phones = [phone(start + i) for i in range(n)]
        owner.update(dict.fromkeys(phones, urgency))
        action_with(sessions, queue, urgency, phones)
        start += n

    async def scenario() -> None:
        client, limits = rate_limited(redis_url, key_prefix, rate)
        try:
            worker = make_worker(sessions, queue, smsc, rate_limits=limits, bind={"rate_per_second": rate})
            async with running(worker):
                await until_async(
                    all_final(sessions, sum(sizes.values())), 60, "every message final", blocking=True
                )
        finally:
            await client.aclose()

    asyncio.run(scenario())
    accepts = smsc.accepts()
    begin = accepts[0][0] + 0.5  # the first take planned before the shares settled
    window = Counter(owner[dest] for t, dest in accepts if begin <= t < begin + 10)
    total = sum(window.values())
    for urgency, weight in ((Urgency.critical, 8), (Urgency.high, 4), (Urgency.routine, 1)):
        assert window[urgency] / total == pytest.approx(weight / 13, rel=0.1), (urgency, window)
    assert busiest_window([t for t, _ in accepts]) <= rate
    stats = smsc.stats()
    assert all(stats["by_destination"][p]["submits"] == 1 for p in owner)


@pytest.mark.slow
def test_two_worker_processes_share_the_bind_by_urgency_and_a_killed_one_loses_nothing(
    world, pg_url, smsc, tmp_path
):
    """Two `burgernet worker sms` processes on one 200/s bind, a robbery with 2,000 SMS and a
    missing child with 600 launched behind it: her first SMS within a second, two thirds of the
    bind while both wait, never above 200 in any sliding second; one worker SIGKILLed midway, a
    third started: nobody lost, a second copy only where the dead worker may have sent one."""
    from sqlalchemy import select

    from gateway.storage.models import Message

    sessions, queue, url = world
    rate = 200
    binds = bind_json(smsc, rate_per_second=rate)
    log = tmp_path / "workers.log"
    workers = [start_worker(pg_url, url, binds, f"sms-{i}", log, SMS_LEASE_SECONDS="3") for i in (1, 2)]
    try:
        smsc.wait_for(lambda s: len(s["binds"]) == 2, 30, "both workers bound")
        _, theft = action_with(sessions, queue, Urgency.high, [phone(i) for i in range(2000)])
        smsc.wait_for(lambda s: s["submits_accepted"] >= 300, 30, "300 accepted")
        launched = time.time()
        _, child = action_with(sessions, queue, Urgency.critical, [phone(100_000 + i) for i in range(600)])
        smsc.wait_for(lambda s: s["submits_accepted"] >= 800, 30, "800 accepted")
        killed_at = time.time()
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(10)
        with sessions() as s:
            may_have_reached = set(
                s.scalars(
                    select(Message.phone).where(
                        Message.status == MessageStatus.sending, Message.dispatched_at.is_not(None)
                    )
                )
            )
        workers.append(start_worker(pg_url, url, binds, "sms-3", log, SMS_LEASE_SECONDS="3"))
        until(proc_all_final(sessions, 2600), 120, "2,600 final statuses", every=0.2)
    finally:
        for proc in workers:
            stop(proc)
    accepts = smsc.accepts()
    kids = set(child)
    first_child = min(t for t, dest in accepts if dest in kids)
    assert first_child - launched <= 1.0, f"her first SMS {first_child - launched:.2f} s after the launch"
    before_kill = [dest in kids for t, dest in accepts if first_child <= t < killed_at]
    assert sum(before_kill) / len(before_kill) == pytest.approx(8 / 12, rel=0.1)
    assert busiest_window([t for t, _ in accepts]) <= rate
    stats = smsc.stats()
    submits = {p: stats["by_destination"].get(p, {}).get("submits", 0) for p in theft + child}
    assert [p for p, n in submits.items() if n == 0] == []  # nobody lost
    assert {p for p, n in submits.items() if n > 1} <= may_have_reached  # RULE: the bound on duplicates
    assert max(submits.values()) <= 2
