"""The SMS worker against SMSCs that behave as real ones do (issue 20), on the independent SMSC
(node-smpp, tests/smsc/) with its modes for it: MO parts delivered one at a time with a response
wait, a part sent again, message ids that repeat after the SMSC's restart, no enquire_link from the
SMSC's side, and a connection that goes silent (half-open). Nothing lost or sent twice in any."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import select

from gateway.queue import RedisStreamQueue
from gateway.storage.models import MessageStatus, Tip

from sms_world import all_final, make_worker, open_action, phone, queue_messages, running, statuses, until


@pytest.fixture
def queue(redis_url, key_prefix):
    q = RedisStreamQueue(redis_url, prefix=key_prefix, claim_idle_ms=60_000)
    yield q
    q.close()


def _tips(sessions) -> list[Tip]:
    with sessions() as s:
        return list(s.execute(select(Tip).order_by(Tip.id)).scalars())


def _submits(smsc, phones) -> dict[str, int]:
    by_destination = smsc.stats()["by_destination"]
    return {p: by_destination.get(p, {}).get("submits", 0) for p in phones}


# --- 3. keep-alive ---------------------------------------------------------------------------


def test_a_silent_smsc_is_found_by_our_enquire_link_and_the_bind_recovers(sessions, queue, smsc):
    """The SMSC never probes; the worker does, after `enquire_link_seconds` idle. Then the
    connection goes silent (it stays open, nothing is answered): the unanswered enquire_link drops
    it within idle time + response timeout, the bind binds again, and messages sent meanwhile go
    out once each."""
    idle, timeout = 1.0, 1.0
    action, bulletin = open_action(sessions)

    async def scenario():
        worker = make_worker(sessions, queue, smsc, bind={"enquire_link_seconds": idle,
                                                          "enquire_link_timeout_seconds": timeout})
        bind = worker.binds["sim1"]
        async with running(worker):
            await until(lambda: bind.up, 10, "the bind")
            await smsc.await_for(lambda s: s["enquire_links_received"] >= 2, 10, "the worker's own enquire_links")
            assert smsc.stats()["enquire_links_sent"] == 0  # the SMSC never probes: the worker does
            first = smsc.stats()["binds"][0]["id"]
            assert await asyncio.to_thread(smsc.silence) == 1
            silenced = time.monotonic()
            phones = [phone(i) for i in range(20)]
            await asyncio.to_thread(queue_messages, sessions, queue, action, bulletin, phones)
            rebound = await smsc.await_for(lambda s: any(b["id"] != first and not b["silent"] for b in s["binds"]),
                                           10, "a new bind")
            detected = time.monotonic() - silenced
            await until(all_final(sessions, 20), 30, "20 final statuses")
        return detected, rebound, phones

    detected, rebound, phones = asyncio.run(scenario())
    # Found dead within the idle time + the response timeout (+ the keeper's tick and the reconnect).
    assert detected <= idle + timeout + 1.0, detected
    assert statuses(sessions)[MessageStatus.delivered] == 20
    assert _submits(smsc, phones) == {p: 1 for p in phones}
