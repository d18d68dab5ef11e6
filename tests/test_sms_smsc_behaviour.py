"""The SMS worker against SMSCs that behave as real ones do (issue 20), on the independent SMSC
(node-smpp, tests/smsc/) with its modes for it: MO parts delivered one at a time with a response
wait, a part sent again, message ids that repeat after the SMSC's restart, no enquire_link from the
SMSC's side, and a connection that goes silent (half-open). Nothing lost or sent twice in any."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from polling import until_async
from sms_world import all_final, make_worker, open_action, phone, queue_messages, running, statuses
from sqlalchemy import select

from gateway.phone import masked
from gateway.queue import RedisStreamQueue
from gateway.sms.health import BindHealth, read_bind_health
from gateway.storage.models import Message, MessageStatus, Tip

LONG_TEXT = (
    "Update: de man is gezien bij het station, hij draagt nu een blauwe jas en heeft een zwarte "
    "rugzak bij zich. Bel gratis 0800-0011 met actiecode 4821 als u hem ziet."
)


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
        worker = make_worker(
            sessions,
            queue,
            smsc,
            bind={"enquire_link_seconds": idle, "enquire_link_timeout_seconds": timeout},
        )
        bind = worker.binds["sim1"]
        async with running(worker):
            await until_async(lambda: bind.up, 10, "the bind", every=0.1, blocking=True)
            await smsc.await_for(
                lambda s: s["enquire_links_received"] >= 2, 10, "the worker's own enquire_links"
            )
            assert smsc.stats()["enquire_links_sent"] == 0  # the SMSC never probes: the worker does
            first = smsc.stats()["binds"][0]["id"]
            assert await asyncio.to_thread(smsc.silence) == 1
            silenced = time.monotonic()
            phones = [phone(i) for i in range(20)]
            await asyncio.to_thread(queue_messages, sessions, queue, action, bulletin, phones)
            await smsc.await_for(
                lambda s: any(b["id"] != first and not b["silent"] for b in s["binds"]), 10, "a new bind"
            )
            detected = time.monotonic() - silenced
            await until_async(all_final(sessions, 20), 30, "20 final statuses", every=0.1, blocking=True)
        return detected, phones

    detected, phones = asyncio.run(scenario())
    # Found dead within the idle time + the response timeout (+ the keeper's tick and the reconnect).
    assert detected <= idle + timeout + 1.0, detected
    assert statuses(sessions)[MessageStatus.delivered] == 20
    assert _submits(smsc, phones) == dict.fromkeys(phones, 1)


# --- 2. SMSC ids are not unique --------------------------------------------------------------


def test_ids_repeated_after_the_smscs_restart_do_not_stop_the_worker(sessions, queue, make_smsc):
    """The SMSC's id counter starts at 1 again after its restart, so the update's submits get the
    alert's ids. The receipt map takes the later submit (see gateway/sms/store.py); every message
    of both rounds is delivered by its own receipts and each went out once. The update is long
    (two parts): a concatenated message's receipts are never folded into its submit, so its
    parts must go into the map."""
    from sms_world import add_bulletin

    smsc = make_smsc(message_ids="counter")
    smsc.configure(receipt_delay_ms=300)  # receipts after the submits are written: the map is used
    action, alert = open_action(sessions)
    update = add_bulletin(sessions, action, LONG_TEXT, 1)
    phones = [phone(i) for i in range(30)]

    async def scenario():
        async with running(make_worker(sessions, queue, smsc)):
            await asyncio.to_thread(queue_messages, sessions, queue, action, alert, phones)
            await until_async(
                all_final(sessions, 30), 30, "the alert's 30 final statuses", every=0.1, blocking=True
            )
            await asyncio.to_thread(smsc.restart)
            smsc.configure(receipt_delay_ms=300)
            await asyncio.to_thread(queue_messages, sessions, queue, action, update, phones)
            await until_async(
                all_final(sessions, 60), 30, "the update's 30 final statuses", every=0.1, blocking=True
            )

    asyncio.run(scenario())
    assert statuses(sessions) == {MessageStatus.delivered: 60}
    assert _submits(smsc, phones) == dict.fromkeys(phones, 2)  # since the restart: the update's 2 parts, once
    with sessions() as s:
        ids = {
            b: set(s.execute(select(Message.provider_id).where(Message.bulletin_id == b)).scalars())
            for b in (alert, update)
        }
    assert ids[alert] & ids[update], "the SMSC did not repeat its ids: the test shows nothing"


def test_a_row_the_database_refuses_is_set_aside_and_the_rest_is_written(
    sessions, queue, smsc, caplog, redis_url, key_prefix
):
    """One message of the batch is deleted while its submit is at the SMSC: its receipt-map row
    now violates the foreign key. The other rows are written, that one is set aside with the
    reason — logged without the full number, counted, and on the bind's health for /health —
    instead of the whole batch being retried forever."""
    smsc.configure(resp_delay_ms=1000, receipt_delay_ms=300)
    action, bulletin = open_action(sessions, LONG_TEXT)  # two parts: receipts never folded, the map is needed
    phones = [phone(i) for i in range(10)]
    ids = queue_messages(sessions, queue, action, bulletin, phones)
    client = redis.Redis.from_url(redis_url)
    health = BindHealth(client, key_prefix)

    async def scenario():
        worker = make_worker(sessions, queue, smsc, health=health)
        async with running(worker):
            await smsc.await_for(lambda s: s["submits_accepted"] == 20, 10, "20 parts at the SMSC")
            with sessions() as s:  # before their responses (1 s): the message goes away
                s.execute(Message.__table__.delete().where(Message.id == ids[3]))
                s.commit()
            await until_async(all_final(sessions, 9), 20, "the other 9 final", every=0.1, blocking=True)
            await until_async(
                lambda: worker.counts.set_aside == 1, 5, "the row set aside", every=0.1, blocking=True
            )
            # What the API's /health returns under sms_binds (gateway.api.app: read_bind_health).
            return await until_async(in_health, 5, "the set-aside row in /health", every=0.1, blocking=True)

    def in_health():
        entry = read_bind_health(client, key_prefix).get("sim1", {})
        return entry if entry.get("rows_set_aside") else None

    with caplog.at_level("WARNING"):
        reported = asyncio.run(scenario())
    client.close()
    assert statuses(sessions) == {MessageStatus.delivered: 9}
    assert _submits(smsc, phones) == dict.fromkeys(phones, 2)
    lines = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
    assert lines and masked(phones[3]) in lines[0] and phones[3] not in " ".join(lines)
    assert reported["rows_set_aside"] == 1 and reported["state"] == "bound"
    assert "foreign key" in reported["last_set_aside"].lower()
    assert not any("retrying" in r.getMessage() for r in caplog.records)


# --- 1. concatenated MO messages -------------------------------------------------------------

LONG_TIP = (
    "Ik zag een man met een rode jas bij de brug over de Vecht, hij liep richting het centrum "
    "en keek steeds om. Hij had een zwarte tas bij zich en stapte bij de bushalte in lijn 4. "
)
assert 160 < len(LONG_TIP) <= 306  # two parts


def _mo_tips(sessions, number) -> list[str]:
    return [t.sms_text for t in _tips(sessions) if t.caller_number == number]


def test_mo_parts_one_at_a_time_are_each_acknowledged_at_once(sessions, queue, smsc):
    """An SMSC with a window of 1 sends part 2 only after part 1's deliver_sm_resp (or its 5 s
    timer): each part is answered as soon as it is stored, the tip has the whole text."""

    async def scenario():
        async with running(make_worker(sessions, queue, smsc)):
            await smsc.await_for(lambda s: s["binds"], 10, "the bind")
            reply = await smsc.asend_mo(phone(7), "3000", LONG_TIP, one_at_a_time=True, part_timeout_ms=5000)
            await until_async(lambda: _mo_tips(sessions, phone(7)), 10, "the tip", every=0.1, blocking=True)
        return reply

    reply = asyncio.run(scenario())
    assert [r["status"] for r in reply["results"]] == [0, 0], reply
    assert all(r["ms"] < 1000 for r in reply["results"]), reply  # not the SMSC's 5 s timer
    assert _mo_tips(sessions, phone(7)) == [LONG_TIP]


def test_a_part_sent_again_is_acknowledged_and_ignored(sessions, queue, smsc):
    """A part sent again after its message was complete (the SMSC did not get our answer), and a
    part sent twice before the message was complete: each answered, one tip per message."""

    async def scenario():
        async with running(make_worker(sessions, queue, smsc)):
            await smsc.await_for(lambda s: s["binds"], 10, "the bind")
            after = await smsc.asend_mo(phone(8), "3000", LONG_TIP, resend_part=1, part_timeout_ms=3000)
            before = await smsc.asend_mo(
                phone(9), "3000", LONG_TIP, only_parts=[1, 1, 2], part_timeout_ms=3000
            )
            await until_async(
                lambda: _mo_tips(sessions, phone(8)) and _mo_tips(sessions, phone(9)),
                10,
                "the tips",
                every=0.1,
                blocking=True,
            )
        return after, before

    after, before = asyncio.run(scenario())
    assert after["acked"] and after["resent"]["status"] == 0, after
    assert [r["status"] for r in before["results"]] == [0, 0, 0], before
    assert _mo_tips(sessions, phone(8)) == [LONG_TIP]
    assert _mo_tips(sessions, phone(9)) == [LONG_TIP]


def test_an_incomplete_mo_message_is_handled_after_the_wait_and_says_so(sessions, queue, smsc):
    """Part 2 of 3 never comes: after the configured wait the tip is recorded with what arrived,
    marked incomplete, the gap shown."""
    text = LONG_TIP * 2
    assert 306 < len(text) <= 459  # three parts of 153
    wait = 1.0

    async def scenario():
        async with running(make_worker(sessions, queue, smsc, mo_part_wait=wait)):
            await smsc.await_for(lambda s: s["binds"], 10, "the bind")
            reply = await smsc.asend_mo(phone(10), "3000", text, only_parts=[1, 3], part_timeout_ms=3000)
            sent = time.monotonic()
            await until_async(
                lambda: _mo_tips(sessions, phone(10)), 10, "the incomplete tip", every=0.05, blocking=True
            )
            return reply, time.monotonic() - sent

    reply, took = asyncio.run(scenario())
    assert [r["status"] for r in reply["results"]] == [0, 0], reply
    (tip,) = _mo_tips(sessions, phone(10))
    assert tip == "[onvolledig: deel 2 van 3 ontbreekt] " + text[:153] + "[…]" + text[306:]
    assert took < wait + 1.5, took


def test_a_part_kept_before_the_worker_stopped_completes_its_message_after(sessions, queue, smsc):
    """Part 1 reaches one worker, which stores and answers it and then stops; part 2 reaches the
    next worker: the message is whole from the database."""

    async def send(parts):
        async with running(make_worker(sessions, queue, smsc)):
            await smsc.await_for(lambda s: len(s["binds"]) == 1, 10, "the bind")
            reply = await smsc.asend_mo(
                phone(11), "3000", LONG_TIP, only_parts=parts, reference=99, part_timeout_ms=3000
            )
            if parts == [2]:
                await until_async(
                    lambda: _mo_tips(sessions, phone(11)), 10, "the tip", every=0.1, blocking=True
                )
            return reply

    first = asyncio.run(send([1]))
    assert [r["status"] for r in first["results"]] == [0], first
    assert _mo_tips(sessions, phone(11)) == []
    second = asyncio.run(send([2]))
    assert [r["status"] for r in second["results"]] == [0], second
    assert _mo_tips(sessions, phone(11)) == [LONG_TIP]
