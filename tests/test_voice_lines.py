"""The voice lines (gateway/voice/lines.py): the cap on simultaneous calls, in the process and
shared through Redis by several workers — leases taken atomically, renewed, lapsing when a worker
stops renewing them. Against the real Redis on loopback; no Asterisk needed."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.voice.lines import Lines, LocalPool, RedisPool


def run(scenario, timeout: float = 20):
    return asyncio.run(asyncio.wait_for(scenario, timeout))


@pytest.fixture
def pool_of(redis_url, key_prefix):
    """RedisPools on one key (one trunk), as separate worker processes would have them."""
    pools: list[RedisPool] = []

    def make(lease_seconds: float = 30) -> RedisPool:
        pools.append(RedisPool(redis_url, f"{key_prefix}voice:lines", lease_seconds))
        return pools[-1]

    return make


def test_in_the_process_the_cap_holds_and_a_released_line_is_free_again():
    async def scenario():
        lines = Lines(LocalPool(), 3, "voice-a")
        first = await lines.take(5)
        assert len(first) == 3 and lines.busy == 3
        assert await lines.take(1) == []
        await lines.release(first[:1])
        assert len(await lines.take(2)) == 1

    run(scenario())


def test_two_workers_never_hold_more_than_the_cap_together(pool_of):
    """Two workers (each its own Redis connection) take lines as fast as they can, 200 times
    each, holding each a moment: never more than the cap in use, and both got lines."""
    cap = 4

    async def scenario():
        a, b = Lines(pool_of(), cap, "voice-a"), Lines(pool_of(), cap, "voice-b")
        most, got = 0, {"voice-a": 0, "voice-b": 0}

        async def churn(lines: Lines) -> None:
            nonlocal most
            for _ in range(200):
                taken = await lines.take(2)
                got[lines.owner] += len(taken)
                most = max(most, await lines.pool.in_use(), a.busy + b.busy)
                await asyncio.sleep(0)
                await lines.release(taken)

        await asyncio.gather(churn(a), churn(b))
        assert await a.pool.in_use() == 0
        await a.pool.close()
        await b.pool.close()
        return most, got

    most, got = run(scenario())
    assert most == cap, most  # used to the full, never over
    assert all(got.values()), got


def test_a_stopped_workers_lines_come_back_when_their_lease_lapses_and_renewed_ones_stay(pool_of):
    async def scenario():
        dead, living = Lines(pool_of(lease_seconds=1), 3, "voice-dead"), Lines(pool_of(1), 3, "voice-b")
        assert len(await dead.take(2)) == 2  # then it stops renewing: killed
        kept = await living.take(3)
        assert len(kept) == 1  # the cap: two lines are the dead worker's
        started = time.monotonic()
        while not await living.take(1):
            await living.renew()  # the living one's call goes on
            await asyncio.sleep(0.1)
        lapsed_after = time.monotonic() - started
        assert 0.7 < lapsed_after < 2.5, lapsed_after
        assert set(kept) <= living.held and await living.pool.in_use() == 2
        await dead.pool.close()
        await living.pool.close()

    run(scenario())


def test_a_retry_waiting_for_a_line_gets_the_one_the_loop_gives_it():
    async def scenario():
        lines = Lines(LocalPool(), 1, "voice-a")
        [held] = await lines.take(1)
        waiting = asyncio.ensure_future(lines.wait(flow=7))
        await asyncio.sleep(0)
        assert lines.waiting() == {7: 1}
        await lines.release([held])
        [line] = await lines.take(1)
        lines.give(7, line)
        assert await waiting == line and not lines.waiting()

    run(scenario())


def test_a_worker_that_got_no_line_gets_the_next_one_freed_even_one_another_freed(pool_of):
    """A worker learns at once that its own call ended, another only at its next look: without
    turns the first would keep every line. One that got no line has the next."""

    async def scenario():
        a, b = Lines(pool_of(), 2, "voice-a"), Lines(pool_of(), 2, "voice-b")
        held = await a.take(2)
        assert await b.take(1) == []  # every line is a's: b waits
        await a.release(held[:1])
        assert await a.take(1) == []  # a's own freed line, but b waited
        assert len(await b.take(1)) == 1
        assert await a.take(1) == []  # full again
        await b.release(list(b.held))
        assert len(await a.take(1)) == 1  # a waited meanwhile
        await a.pool.close()
        await b.pool.close()

    run(scenario())
