"""The SMS worker against the independent SMSC (node-smpp), PostgreSQL and Redis: faults included."""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis
from polling import until_async
from sms_world import all_final, make_worker, open_action, phone, queue_messages, running, statuses
from sqlalchemy import func, select, text

from gateway.queue import RedisStreamQueue
from gateway.sms.health import BindHealth, read_bind_health
from gateway.sms.store import claim_sms
from gateway.storage.db import make_engine, session_factory
from gateway.storage.models import Message, MessageStatus, SmsPart


@pytest.fixture
def queue(redis_url, key_prefix):
    q = RedisStreamQueue(redis_url, prefix=key_prefix, claim_idle_ms=60_000)
    yield q
    q.close()


def messages(sessions) -> dict[str, Message]:
    with sessions() as s:
        return {m.phone: m for m in s.execute(select(Message)).scalars()}


@pytest.mark.parametrize("receipt_delay_ms", [0, 1500])
def test_messages_are_submitted_and_delivered_with_receipts(sessions, queue, smsc, receipt_delay_ms):
    """Both databases: every message submitted once and then delivered by its receipt, with times.
    A receipt that arrives before its submit is written makes the message final in one write (no
    sms_part row needed); a later one finds the message through its sms_part row. Same end."""
    smsc.configure(receipt_delay_ms=receipt_delay_ms)
    action, bulletin = open_action(sessions)
    phones = [phone(i) for i in range(200)]
    queue_messages(sessions, queue, action, bulletin, phones)

    async def scenario():
        async with running(make_worker(sessions, queue, smsc)):
            await until_async(all_final(sessions, 200), 60, "200 final statuses", every=0.1, blocking=True)

    asyncio.run(scenario())
    stats = smsc.stats()
    assert {p: stats["by_destination"][p]["submits"] for p in phones} == dict.fromkeys(phones, 1)
    for m in messages(sessions).values():
        assert m.status == MessageStatus.delivered and m.detail == "delivered", (m.status, m.detail)
        assert m.provider_id and m.sent_at and m.final_at and m.sent_at <= m.final_at
        assert m.dispatched_at is not None
    with sessions() as s:
        parts = s.scalar(select(func.count()).select_from(SmsPart))
    if receipt_delay_ms:
        assert parts == 200  # each submit written before its receipt came: the map was needed
    else:
        assert parts < 200  # most receipts came within the flush interval and were folded


@pytest.mark.slow
def test_ten_thousand_while_the_smsc_drops_the_connection_twice(pg_sessions, queue, smsc):
    """Every recipient has exactly one submit accepted at the SMSC and every status is final."""
    sessions = pg_sessions
    n = 10_000
    action, bulletin = open_action(sessions)
    phones = [phone(i) for i in range(n)]
    queue_messages(sessions, queue, action, bulletin, phones)
    smsc.configure(drop_after=2500)

    async def scenario():
        worker = make_worker(sessions, queue, smsc)
        async with running(worker):
            await smsc.await_for(lambda s: s["drops"] >= 1, 120, "the first drop")
            smsc.configure(drop_after=3000)
            await smsc.await_for(lambda s: s["drops"] >= 2, 120, "the second drop")
            await until_async(all_final(sessions, n), 180, f"{n} final statuses", every=0.1, blocking=True)
        return worker

    worker = asyncio.run(scenario())
    stats = smsc.stats()
    assert stats["drops"] == 2
    submits = {p: stats["by_destination"].get(p, {}).get("submits", 0) for p in phones}
    final = statuses(sessions)
    wrong = {c: sum(1 for v in submits.values() if v == c) for c in set(submits.values()) if c != 1}
    assert wrong == {}, (wrong, final)
    assert stats["submits_accepted"] == n
    assert final[MessageStatus.delivered] == n, final
    print(
        f"\nafter 2 drops: {worker.limbo.proven} unanswered submits proven accepted by their receipt, "
        f"{worker.binds['sim1'].resent_after_drop} sent again"
    )


def test_the_database_dropping_the_workers_connections_loses_nothing(
    pg_url, pg_sessions, queue, smsc, caplog
):
    """The database cuts the worker's connections twice while it sends (pg_terminate_backend, as
    a restart or a failover does): the failed claims and writes are tried again, every recipient
    gets exactly one submit and every status ends final. The worker's pool does not test its
    connections before use here, so that each cut fails a transaction (with the test, only a cut
    during a transaction would — the same path, rarer)."""
    engine = make_engine(pg_url, pool_pre_ping=False)
    sessions = pg_sessions  # the test's own, which test their connections before use
    n = 3000
    action, bulletin = open_action(sessions)
    phones = [phone(i) for i in range(n)]
    queue_messages(sessions, queue, action, bulletin, phones)
    smsc.configure(resp_delay_ms=2)  # slow enough that the cuts land while it sends

    def cut_connections() -> int:
        admin = make_engine(pg_url)
        with admin.connect() as conn:
            cut = conn.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        admin.dispose()
        return cut

    async def scenario():
        async with running(make_worker(session_factory(engine), queue, smsc)):
            for accepted in (500, 1500):
                await smsc.await_for(
                    lambda s, a=accepted: s["submits_accepted"] >= a, 60, f"{accepted} submits"
                )
                # Right after the first cut the worker may hold no connection yet (it sends what it
                # claimed before, and tries its write again a second later): cut once it has one.
                await until_async(
                    cut_connections, 10, "a connection of the worker's to cut", every=0.05, blocking=True
                )
            await until_async(all_final(sessions, n), 120, f"{n} final statuses", every=0.1, blocking=True)

    with caplog.at_level(logging.WARNING, logger="gateway.sms.worker"):
        asyncio.run(scenario())
    final = statuses(sessions)
    engine.dispose()
    stats = smsc.stats()
    submits = {p: stats["by_destination"].get(p, {}).get("submits", 0) for p in phones}
    assert set(submits.values()) == {1}
    assert final[MessageStatus.delivered] == n, final
    assert any("failed" in r.getMessage() for r in caplog.records), "the cuts failed no claim or write"


def test_a_claim_whose_answer_was_lost_goes_out_once_its_lease_runs_out(sessions, queue, smsc):
    """A claim committed while its answer died with the connection: the messages are `sending` in
    the worker's name, but the worker never had them. It renews only the leases of what it has in
    hand, so theirs run out and they go again — once (no receipt proves them sent)."""
    action, bulletin = open_action(sessions)
    phones = [phone(i) for i in range(20)]
    ids = queue_messages(sessions, queue, action, bulletin, phones)
    assert len(claim_sms(sessions, ids[:5], "sms-test")) == 5  # the worker's claim; its answer lost

    async def scenario():
        async with running(make_worker(sessions, queue, smsc, lease_seconds=1, unanswered_grace=0.5)):
            await until_async(all_final(sessions, 20), 30, "20 final statuses", every=0.1, blocking=True)

    asyncio.run(scenario())
    stats = smsc.stats()
    assert {p: stats["by_destination"][p]["submits"] for p in phones} == dict.fromkeys(phones, 1)
    assert statuses(sessions)[MessageStatus.delivered] == 20


def test_throttled_the_bind_backs_off_and_everything_still_goes(sessions, queue, smsc, caplog):
    action, bulletin = open_action(sessions)
    phones = [phone(i) for i in range(300)]
    smsc.configure(throttle_ms=1500)
    queue_messages(sessions, queue, action, bulletin, phones)

    async def scenario():
        worker = make_worker(sessions, queue, smsc)
        async with running(worker):
            await until_async(all_final(sessions, 300), 90, "300 final statuses", every=0.1, blocking=True)
        return worker

    with caplog.at_level("WARNING"):
        asyncio.run(scenario())
    stats = smsc.stats()
    assert stats["rejected_by_status"].get(str(0x58), 0) > 0  # it was throttled
    assert "slowing down" in caplog.text
    # Backed off: far fewer throttled answers than a blind resend loop would collect in 1.5 s.
    assert stats["rejected_by_status"][str(0x58)] < 1500
    assert statuses(sessions)[MessageStatus.delivered] == 300
    assert {p: stats["by_destination"][p]["submits"] for p in phones} == dict.fromkeys(phones, 1)


def test_message_queue_full_is_retried_too(sessions, queue, smsc):
    action, bulletin = open_action(sessions)
    smsc.configure(msgqful_ms=800)
    queue_messages(sessions, queue, action, bulletin, [phone(i) for i in range(50)])

    async def scenario():
        async with running(make_worker(sessions, queue, smsc)):
            await until_async(all_final(sessions, 50), 60, "50 final statuses", every=0.1, blocking=True)

    asyncio.run(scenario())
    assert statuses(sessions)[MessageStatus.delivered] == 50
    assert smsc.stats()["rejected_by_status"].get(str(0x14), 0) > 0


def test_lost_responses_are_sent_again_after_the_timeout(sessions, queue, smsc):
    """The SMSC swallows every 7th submit (no response, not accepted): those go again."""
    action, bulletin = open_action(sessions)
    smsc.configure(no_resp_every=7)
    phones = [phone(i) for i in range(70)]
    queue_messages(sessions, queue, action, bulletin, phones)

    async def scenario():
        worker = make_worker(sessions, queue, smsc, bind={"response_timeout_seconds": 1})
        async with running(worker):
            await until_async(all_final(sessions, 70), 60, "70 final statuses", every=0.1, blocking=True)

    asyncio.run(scenario())
    stats = smsc.stats()
    assert stats["submits_unanswered"] >= 10
    assert statuses(sessions)[MessageStatus.delivered] == 70
    assert {p: stats["by_destination"][p]["submits"] for p in phones} == dict.fromkeys(phones, 1)


def test_a_rejected_destination_fails_with_the_reason_and_an_undeliverable_receipt_fails(
    sessions, queue, smsc
):
    action, bulletin = open_action(sessions)
    smsc.configure(receipt_stat={"99": "UNDELIV"})
    queue_messages(sessions, queue, action, bulletin, [phone(1), phone(99)])

    async def scenario():
        async with running(make_worker(sessions, queue, smsc)):
            await until_async(all_final(sessions, 2), 30, "2 final statuses", every=0.1, blocking=True)

    asyncio.run(scenario())
    got = messages(sessions)
    assert got[phone(1)].status == MessageStatus.delivered
    assert got[phone(99)].status == MessageStatus.failed and "UNDELIV" in got[phone(99)].detail


def test_a_wrong_password_is_reported_clearly_and_retried_with_backoff(
    sessions, queue, smsc, caplog, redis_url, key_prefix
):
    client = redis.Redis.from_url(redis_url)
    health = BindHealth(client, key_prefix)

    async def scenario():
        worker = make_worker(sessions, queue, smsc, health=health, bind={"password": "wrong"})
        bind = worker.binds["sim1"]
        bind.auth_backoff = type(bind.auth_backoff)(0.5, 2.0, 60.0)
        async with running(worker):
            await until_async(
                lambda: read_bind_health(client, key_prefix).get("sim1", {}).get("state") == "auth_failed",
                10,
                "health auth_failed",
                every=0.1,
                blocking=True,
            )
            await asyncio.sleep(3.2)  # backoff 0.5, 1, 2: about four attempts, not a loop
            api_health = await asyncio.to_thread(health_endpoint)
            return smsc.stats()["binds_rejected"], read_bind_health(client, key_prefix)["sim1"], api_health

    def health_endpoint():
        from fastapi.testclient import TestClient

        from gateway.api.app import create_app
        from gateway.config import Settings

        api_queue = RedisStreamQueue(redis_url, prefix=key_prefix)
        app = create_app(
            Settings(environment="test", secret_key="x" * 32),
            sessions=sessions,
            queue=api_queue,
            housekeeping_jobs=False,
        )
        with TestClient(app) as http:
            return http.get("/health").json()

    with caplog.at_level("ERROR"):
        rejected, reported, api_health = asyncio.run(scenario())
    client.close()
    assert 2 <= rejected <= 5
    assert reported["state"] == "auth_failed" and "wrong password" in reported["detail"]
    assert api_health["sms_binds"]["sim1"]["state"] == "auth_failed"  # the API's /health shows it
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "refused the bind" in errors[0] and "wrong password" in errors[0]
    assert "wrong" not in errors[0].replace("wrong password", "")  # the password itself is not logged


def test_long_dutch_and_emoji_texts_every_part_receipt_maps_to_the_message(sessions, queue, smsc):
    action, _ = open_action(sessions)
    dutch = (
        "Gezocht in Utrecht-Oost: een man van ongeveer veertig jaar met een rode jas en een "
        "zwarte tas, gezien bij het station. Hij reed weg op een fiets met een kinderzitje. "
        "Heeft u hem gezien? Bel gratis 0800-0011 met actiecode 4821. Beloning € 500; "
        "de politie dankt u voor uw hulp bij deze zoektocht naar de daders uit België."
    )
    assert len(dutch) >= 300 and "€" in dutch and "ë" in dutch
    emoji = "Vermist: kind (6) met blauwe pet 🧢, laatst gezien bij de speeltuin 🛝. Bel 0800-0011, actiecode 4821."
    from sms_world import add_bulletin

    b1 = add_bulletin(sessions, action, dutch, 1)
    b2 = add_bulletin(sessions, action, emoji, 2)
    queue_messages(sessions, queue, action, b1, [phone(1)])
    queue_messages(sessions, queue, action, b2, [phone(2)])

    async def scenario():
        async with running(make_worker(sessions, queue, smsc)):
            await until_async(all_final(sessions, 2), 30, "2 final statuses", every=0.1, blocking=True)

    asyncio.run(scenario())
    got = messages(sessions)
    assert smsc.texts(phone(1)) == [dutch] and smsc.texts(phone(2)) == [emoji]
    with sessions() as s:
        parts = {(p.message_id, p.part): p for p in s.execute(select(SmsPart)).scalars()}
    for number in (phone(1), phone(2)):
        m = got[number]
        mine = [p for (mid, _), p in parts.items() if mid == m.id]
        assert len(mine) == mine[0].parts >= 2
        assert all(p.stat == "DELIVRD" for p in mine)
        assert m.status == MessageStatus.delivered and "parts delivered" in m.detail


def test_one_failed_part_fails_the_concatenated_message(sessions, queue, smsc):
    action, _ = open_action(sessions)
    from sms_world import add_bulletin

    b = add_bulletin(sessions, action, "Lang bericht. " * 30, 1)
    smsc.configure(receipt_stat={phone(5)[-4:]: "EXPIRED"})
    queue_messages(sessions, queue, action, b, [phone(5)])

    async def scenario():
        async with running(make_worker(sessions, queue, smsc)):
            await until_async(all_final(sessions, 1), 30, "1 final status", every=0.1, blocking=True)

    asyncio.run(scenario())
    m = messages(sessions)[phone(5)]
    assert m.status == MessageStatus.failed and "EXPIRED" in m.detail.upper()


def test_a_text_over_the_part_limit_fails_with_the_reason(sessions, queue, smsc):
    action, _ = open_action(sessions)
    from sms_world import add_bulletin

    b = add_bulletin(sessions, action, "x" * 400, 1)
    queue_messages(sessions, queue, action, b, [phone(1)])

    async def scenario():
        async with running(make_worker(sessions, queue, smsc, max_parts=2)):
            await until_async(all_final(sessions, 1), 30, "1 final status", every=0.1, blocking=True)

    asyncio.run(scenario())
    m = messages(sessions)[phone(1)]
    assert m.status == MessageStatus.failed and "maximum is 2" in m.detail
    assert smsc.stats()["submits_accepted"] == 0


def test_a_receipt_for_an_unknown_id_is_logged_masked_and_ignored(sessions, queue, smsc, caplog):
    from datetime import timedelta

    action, bulletin = open_action(sessions)
    smsc.configure(withhold_receipts=True)
    queue_messages(sessions, queue, action, bulletin, [phone(1)])

    def submitted():
        return statuses(sessions)[MessageStatus.submitted] == 1

    async def scenario():
        worker = make_worker(sessions, queue, smsc)
        worker.writer.receipt_patience = timedelta(seconds=0.3)
        async with running(worker):
            await until_async(submitted, 30, "the message submitted", every=0.1, blocking=True)
            with sessions() as s:  # the DLR map no longer knows the id
                s.execute(SmsPart.__table__.delete())
                s.commit()
            assert smsc.release_receipts() == 1
            await until_async(
                lambda: worker.counts.receipts_unknown == 1,
                10,
                "the unknown receipt given up",
                every=0.1,
                blocking=True,
            )

    with caplog.at_level("WARNING"):
        asyncio.run(scenario())
    m = messages(sessions)[phone(1)]
    assert m.status == MessageStatus.submitted  # ignored: nothing changed
    lines = [r.getMessage() for r in caplog.records if "unknown SMSC id" in r.getMessage()]
    assert len(lines) == 1 and m.provider_id not in lines[0]


def register_participants(sessions, *phones: str) -> None:
    from gateway.storage.models import Address, Municipality, Participant

    with sessions() as s:
        town = Municipality(cbs_code="GM0344", name="Utrecht", region="Midden-Nederland")
        s.add(town)
        s.flush()
        for number in phones:
            p = Participant(municipality_id=town.id, name="P", phone=number)
            p.addresses = [
                Address(postcode="3511 AB", house_number="1", lat=52.09, lon=5.12, tile=0, channel="sms")
            ]
            s.add(p)
        s.commit()


def test_stop_variants_unsubscribe_and_get_a_confirmation_and_a_sentence_with_stop_is_a_tip(
    sessions, queue, smsc
):
    from gateway.actions import wording
    from gateway.storage.models import Participant, Tip

    variants = {phone(1): "Stop", phone(2): " s t o p ", phone(3): "AFMELDEN!", phone(4): "stop burgernet"}
    tip_number = phone(5)
    register_participants(sessions, *variants, tip_number)

    async def scenario():
        async with running(make_worker(sessions, queue, smsc)):
            await until_async(lambda: smsc.stats()["binds"], 10, "the bind", every=0.1, blocking=True)
            for number, text in variants.items():
                reply = await smsc.asend_mo(number, "3000", text)
                assert reply["acked"], reply
            assert (await smsc.asend_mo(tip_number, "3000", "stop de man bij de brug!"))["acked"]
            await until_async(
                lambda: all(smsc.texts(n) for n in variants),
                20,
                "the confirmations",
                every=0.1,
                blocking=True,
            )

    asyncio.run(scenario())
    with sessions() as s:
        people = {p.phone: p for p in s.execute(select(Participant)).scalars()}
        tips = list(s.execute(select(Tip)).scalars())
    for number in variants:
        assert people[number].unsubscribed_at is not None, number
        assert smsc.texts(number) == [wording.unsubscribed_sms()]
    assert people[tip_number].unsubscribed_at is None
    assert [(t.caller_number, t.sms_text, t.action_id) for t in tips] == [
        (tip_number, "stop de man bij de brug!", None)
    ]
    # The confirmation is not an action's message: no Message row for it.
    assert messages(sessions) == {}


def test_an_sms_tip_during_an_open_action_is_attached_to_it(sessions, queue, smsc):
    from gateway.storage.models import MatchedBy

    action, bulletin = open_action(sessions)
    queue_messages(sessions, queue, action, bulletin, [phone(7)])
    long_tip = (
        "Ik zag een man met een rode jas bij de brug over de Vecht, hij liep richting het centrum. " * 2
    )

    async def scenario():
        async with running(make_worker(sessions, queue, smsc)):
            await until_async(all_final(sessions, 1), 30, "the alert delivered", every=0.1, blocking=True)
            assert (await smsc.asend_mo(phone(7), "3000", long_tip))["acked"]  # concatenated MO
            await until_async(lambda: _tips(sessions), 20, "the tip", every=0.1, blocking=True)

    asyncio.run(scenario())
    (tip,) = _tips(sessions)
    assert (tip.action_id, tip.caller_number, tip.sms_text, tip.matched_by) == (
        action,
        phone(7),
        long_tip,
        MatchedBy.caller_id,
    )


def _tips(sessions):
    from gateway.storage.models import Tip

    with sessions() as s:
        return list(s.execute(select(Tip)).scalars())
