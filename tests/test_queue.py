"""The work queue: the WorkQueue contract on Redis Streams and on the in-memory substitute,
and the database side (publish_messages, reconcile, claim) on PostgreSQL and SQLite."""

import asyncio
import logging
import threading
import time
from datetime import UTC, timedelta

import pytest
import redis
from polling import until, until_async
from sqlalchemy import insert, select, text

from gateway.queue import (
    Delivery,
    Intake,
    MemoryQueue,
    RedisStreamQueue,
    WorkQueue,
    claim,
    make_queue,
    publish_messages,
    reconcile,
)
from gateway.storage.db import make_engine
from gateway.storage.models import (
    Action,
    ActionType,
    Bulletin,
    BulletinKind,
    Centralist,
    Channel,
    Message,
    MessageStatus,
    utcnow,
)
from gateway.storage.postgresql import pg_ints, pg_texts, refresh_statistics_after_growth

# --- the WorkQueue contract, on both implementations ------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def make_q(request):
    """Builds queues of one implementation; `make_q(claim_idle_ms=...)`. One id per entry on
    Redis, as in memory: these tests are about entries (packed SMS entries: tested below)."""
    made: list[WorkQueue] = []

    def make(claim_idle_ms: int = 60_000) -> WorkQueue:
        if request.param == "memory":
            q = MemoryQueue(claim_idle_ms=claim_idle_ms)
        else:
            url = request.getfixturevalue("redis_url")
            prefix = request.getfixturevalue("key_prefix")
            q = RedisStreamQueue(url, prefix=prefix, claim_idle_ms=claim_idle_ms, ids_per_entry={})
        made.append(q)
        return q

    yield make
    for q in made:
        q.close()


def drain(q: WorkQueue, channel: str, consumer: str = "w1", count: int = 1000) -> list[Delivery]:
    """Consume and ack until nothing is left."""
    got: list[Delivery] = []
    while batch := q.consume(channel, consumer, count=count, block_ms=20):
        got.extend(batch)
        q.ack(channel, [d.entry_id for d in batch])
    return got


def test_flows_are_taken_as_the_plan_says_in_its_order(make_q):
    """Each flow (bulletin) has its own line; the plan picks whose entries go, and the
    deliveries come in the plan's order, interleaved."""
    q = make_q()
    q.publish("sms", [1, 2, 3, 4], flow=10)
    q.publish("sms", [21, 22], flow=20)
    assert q.waiting("sms") == {10: 4, 20: 2} and q.backlog("sms") == 6
    seen = []

    def plan(waiting, count):
        seen.append((dict(waiting), count))
        return [20, 10, 20, 10][:count]

    got = q.consume("sms", "w1", count=4, block_ms=50, plan=plan)
    assert seen == [({10: 4, 20: 2}, 4)]
    assert [d.message_id for d in got] == [21, 1, 22, 2]
    q.ack("sms", [d.entry_id for d in got])
    assert q.waiting("sms") == {10: 2}  # a flow with nothing left is forgotten
    assert [d.message_id for d in drain(q, "sms")] == [3, 4]  # the default plan: oldest flow first
    assert q.waiting("sms") == {} and q.backlog("sms") == 0
    q.publish("sms", [5], flow=20)  # a forgotten flow comes back with its next publish
    assert [d.message_id for d in drain(q, "sms")] == [5]


def test_a_flow_taken_by_a_dead_consumer_comes_back_in_its_flow(make_q):
    q = make_q(claim_idle_ms=50)
    q.publish("voice", [1], flow=3)
    q.publish("voice", [2], flow=4)
    assert len(q.consume("voice", "dead", count=2, block_ms=50)) == 2
    again = until(
        lambda: q.consume("voice", "alive", count=1, block_ms=20, plan=lambda waiting, count: [4]),
        timeout=5,
        what="flow 4's entry, idle past claim_idle_ms, to come back",
    )
    assert [d.message_id for d in again] == [2]


def test_round_trip_keeps_order_per_channel(make_q):
    q = make_q()
    assert isinstance(q, WorkQueue)
    q.publish("sms", [5, 3, 9, 1])
    q.publish(Channel.voice, [7])  # the enum works as a channel name too
    assert q.backlog("sms") == 4 and q.pending("sms") == 0

    batch = q.consume("sms", "w1", count=100, block_ms=100)
    assert [d.message_id for d in batch] == [5, 3, 9, 1]
    assert len({d.entry_id for d in batch}) == 4
    assert all(isinstance(d.entry_id, str) for d in batch)
    assert q.pending("sms") == 4 and q.backlog("sms") == 4

    q.ack("sms", [d.entry_id for d in batch])
    assert q.pending("sms") == 0 and q.backlog("sms") == 0
    assert [d.message_id for d in q.consume("voice", "w1", block_ms=100)] == [7]


def test_count_limits_a_batch(make_q):
    q = make_q()
    q.publish("sms", list(range(1, 11)))
    first = q.consume("sms", "w1", count=4, block_ms=50)
    second = q.consume("sms", "w1", count=100, block_ms=50)
    assert [d.message_id for d in first] == [1, 2, 3, 4]
    assert [d.message_id for d in second] == list(range(5, 11))


def test_unacked_entries_stay_with_their_consumer_until_idle(make_q):
    q = make_q(claim_idle_ms=60_000)
    q.publish("sms", [1, 2])
    assert len(q.consume("sms", "a", block_ms=50)) == 2
    assert q.consume("sms", "b", block_ms=50) == []
    assert q.pending("sms") == 2


def test_unacked_entries_are_redelivered_after_claim_idle(make_q):
    q = make_q(claim_idle_ms=50)
    q.publish("sms", [1, 2, 3])
    first = q.consume("sms", "a", block_ms=100)
    assert [d.message_id for d in first] == [1, 2, 3]
    # "a" dies without acking; "b" gets the same entries once they have been idle long enough.
    again: list[Delivery] = []

    def all_three_again() -> bool:
        again.extend(q.consume("sms", "b", block_ms=20))
        return len(again) >= 3

    until(all_three_again, timeout=5, what="the three entries to come back to b")
    assert sorted(again, key=lambda d: d.message_id) == first
    q.ack("sms", [d.entry_id for d in again])
    assert q.pending("sms") == 0 and q.backlog("sms") == 0
    time.sleep(0.1)  # past claim_idle_ms: acked entries do not come back
    assert q.consume("sms", "c", block_ms=20) == []


def test_ack_removes_only_the_acked(make_q):
    q = make_q()
    q.publish("sms", [1, 2, 3])
    batch = q.consume("sms", "w1", block_ms=50)
    q.ack("sms", [batch[0].entry_id, batch[2].entry_id])
    assert q.pending("sms") == 1 and q.backlog("sms") == 1
    q.ack("sms", [batch[1].entry_id, batch[1].entry_id])  # acking twice is harmless
    assert q.pending("sms") == 0 and q.backlog("sms") == 0
    q.ack("sms", [])


def test_consume_with_nothing_returns_empty_after_block(make_q):
    q = make_q()
    started = time.monotonic()
    assert q.consume("sms", "w1", block_ms=100) == []
    elapsed = time.monotonic() - started
    assert 0.08 <= elapsed < 2
    assert q.consume("voice", "w1", block_ms=0) == []  # 0: do not wait
    assert q.pending("voice") == 0 and q.backlog("voice") == 0


def test_blocked_consume_wakes_up_on_publish(make_q):
    q = make_q()
    q.consume("sms", "w1", block_ms=0)  # the stream and group exist before the wait
    timer = threading.Timer(0.1, q.publish, args=("sms", [42]))
    timer.start()
    try:
        started = time.monotonic()
        batch = q.consume("sms", "w1", block_ms=5000)
        assert [d.message_id for d in batch] == [42]
        assert time.monotonic() - started < 3
    finally:
        timer.join()


def test_ten_thousand_ids_each_exactly_once(make_q):
    q = make_q()
    ids = list(range(1, 10_001))
    q.publish("sms", ids)
    assert q.backlog("sms") == 10_000
    got = drain(q, "sms")
    assert [d.message_id for d in got] == ids
    assert len({d.entry_id for d in got}) == 10_000
    assert q.pending("sms") == 0 and q.backlog("sms") == 0


# --- Intake: a worker's consume, claim and ack -------------------------------------------------


def test_intake_claims_first_what_a_failed_claim_took(make_q):
    """Left to the queue, the entries of a failed claim would come back only after claim_idle_ms
    (60 s here): the intake keeps them and claims them first, before anything new."""
    q = make_q()
    q.publish("voice", [1, 2, 3])
    intake = Intake(q, "voice", "w1")

    def database_away(ids):
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError, match="went away"):
        intake.take(10, 50, database_away)
    assert q.pending("voice") == 3  # nothing acked
    q.publish("voice", [4])
    assert intake.take(10, 50, lambda ids: [i * 10 for i in ids]) == [10, 20, 30]
    assert q.pending("voice") == 0
    assert intake.take(10, 50, lambda ids: ids) == [4]
    assert q.backlog("voice") == 0
    assert intake.take(10, 20, database_away) == []  # nothing to claim: the claim is not called


def test_intake_gives_back_no_more_than_asked_after_a_failed_claim(make_q):
    """A voice worker asks for one message per free line: after a failed claim of three, a take
    of two gets two (the third comes with the next take), never three."""
    q = make_q()
    q.publish("voice", [1, 2, 3])
    intake = Intake(q, "voice", "w1")

    def database_away(ids):
        raise ConnectionError("database away")

    with pytest.raises(ConnectionError):
        intake.take(3, 50, database_away)
    assert intake.take(2, 50, lambda ids: ids) == [1, 2]
    assert intake.take(2, 50, lambda ids: ids) == [3]
    assert q.backlog("voice") == 0


def test_intake_a_failed_ack_keeps_the_claim(make_q, monkeypatch, caplog):
    """The claim committed: its messages must go out even if the ack failed (they come back from
    the queue later, and claiming them again gets nothing)."""
    q = make_q()
    q.publish("voice", [1, 2])

    def redis_away(channel, entry_ids):
        raise ConnectionError("Redis went away\n(a second line not for the log)")

    monkeypatch.setattr(q, "ack", redis_away)
    with caplog.at_level("WARNING", logger="gateway.queue.intake"):
        assert Intake(q, "voice", "w1").take(10, 50, lambda ids: ids) == [1, 2]
    assert "voice: acknowledging 2 queue entries failed (Redis went away); they come back" in caplog.text
    assert "second line" not in caplog.text
    assert q.pending("voice") == 2


def test_sms_ids_travel_ten_to_an_entry_on_redis(redis_url, key_prefix):
    """One XADD per 10 SMS ids; each id is still its own Delivery, acked with its entry."""
    q = RedisStreamQueue(redis_url, prefix=key_prefix, claim_idle_ms=50)
    try:
        ids = list(range(1, 26))
        q.publish("sms", ids)
        q.publish("voice", [7, 8])
        assert q.backlog("sms") == 3 and q.backlog("voice") == 2  # entries: voice is not packed
        first = q.consume("sms", "a", count=20, block_ms=50)
        assert [d.message_id for d in first] == ids[:20]
        assert len({d.entry_id for d in first}) == 2
        # "a" dies before acking the second entry: "b" gets all of its ids, and the rest.
        q.ack("sms", [d.entry_id for d in first[:10]])
        time.sleep(0.1)
        again = drain(q, "sms", "b", count=500)
        assert sorted(d.message_id for d in again) == ids[10:]
        assert q.pending("sms") == 0 and q.backlog("sms") == 0
    finally:
        q.close()


def test_make_queue(redis_url, key_prefix):
    assert isinstance(make_queue(""), MemoryQueue)
    q = make_queue(redis_url, prefix=key_prefix)
    try:
        assert isinstance(q, RedisStreamQueue)
        assert q.key("sms", 7) == f"{key_prefix}queue:sms:7" and q.group == "workers"
    finally:
        q.close()


def test_redis_entries_are_plain_ids_and_survive_a_lost_group(redis_url, key_prefix):
    q = RedisStreamQueue(redis_url, prefix=key_prefix)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        q.publish("sms", [12], flow=3)
        key = f"{key_prefix}queue:sms:3"
        assert client.smembers(f"{key_prefix}queue:sms:flows") == {"3"}
        [(_, fields)] = client.xrange(key)
        assert fields == {"message_id": "12"}
        assert [g["name"] for g in client.xinfo_groups(key)] == ["workers"]
        # The group vanishes (e.g. Redis restored without it): consume recreates it from "0".
        client.xgroup_destroy(key, "workers")
        assert [d.message_id for d in q.consume("sms", "w1", block_ms=50)] == [12]
        # The whole stream vanishes (Redis lost its data): nothing to consume, no error.
        client.delete(key)
        assert q.consume("sms", "w1", block_ms=20) == []
        assert q.pending("sms") == 0 and q.backlog("sms") == 0
    finally:
        client.close()
        q.close()


# --- the database side, on PostgreSQL and SQLite --------------------------------------------------


@pytest.fixture
def bulletin_id(sessions):
    return new_bulletin(sessions)


def new_bulletin(sessions) -> int:
    with sessions() as s, s.begin():
        centralist = Centralist(
            name="C. Entralist", meldkamer="Midden-Nederland", dial_string="PJSIP/4021@mk"
        )
        action = Action(
            type=ActionType.burglary,
            description="Man, rode jas",
            lat=52.09,
            lon=5.12,
            radius_m=1000,
            centralist=centralist,
        )
        # Published: these tests are about messages queued on their own (`enqueued_at`).
        bulletin = Bulletin(
            action=action,
            kind=BulletinKind.alert,
            seq=0,
            sms_text="x",
            spoken_text="x",
            published_at=utcnow(),
        )
        s.add(bulletin)
        s.flush()
        return bulletin.id


def add_messages(sessions, bulletin_id, n, channel="sms", age_s=0.0, **values) -> list[int]:
    """`n` messages created `age_s` seconds ago; their ids, ascending."""
    created = utcnow() - timedelta(seconds=age_s)
    with sessions() as s, s.begin():
        action_id = s.get(Bulletin, bulletin_id).action_id
        start = s.scalar(select(Message.id).order_by(Message.id.desc()).limit(1)) or 0
        rows = [
            dict(
                bulletin_id=bulletin_id,
                action_id=action_id,
                phone=f"+316{start + i:08d}",
                channel=Channel(channel),
                created_at=created,
                **values,
            )
            for i in range(1, n + 1)
        ]
        s.execute(insert(Message), rows)
        return list(s.scalars(select(Message.id).where(Message.id > start).order_by(Message.id)))


def queued_ids(q: WorkQueue, channel: str) -> list[int]:
    return [d.message_id for d in drain(q, channel)]


def test_publish_messages_sets_enqueued_at(sessions, bulletin_id):
    sms = add_messages(sessions, bulletin_id, 3, "sms")
    voice = add_messages(sessions, bulletin_id, 2, "voice")
    q = MemoryQueue()
    before = utcnow()
    assert publish_messages(sessions, q, {"sms": sms, Channel.voice: voice, "sms2": []}) == 5
    assert queued_ids(q, "sms") == sms and queued_ids(q, "voice") == voice
    with sessions() as s:
        marks = s.scalars(select(Message.enqueued_at)).all()
    assert len(marks) == 5 and all(m is not None and m >= before for m in marks)
    assert publish_messages(sessions, q, {}) == 0


def test_reconcile_republishes_lost_publishes_only(sessions, bulletin_id):
    lost_sms = add_messages(sessions, bulletin_id, 2, "sms", age_s=600)
    lost_voice = add_messages(sessions, bulletin_id, 1, "voice", age_s=600)
    fresh = add_messages(sessions, bulletin_id, 2, "sms")  # may still be on its way to publish
    published = add_messages(sessions, bulletin_id, 2, "sms", age_s=600, enqueued_at=utcnow())
    add_messages(sessions, bulletin_id, 1, "sms", age_s=600, status=MessageStatus.cancelled)
    add_messages(sessions, bulletin_id, 1, "sms", age_s=600, status=MessageStatus.sending)
    q = MemoryQueue()

    assert reconcile(sessions, q, grace_seconds=60) == 3
    assert queued_ids(q, "sms") == lost_sms and queued_ids(q, "voice") == lost_voice
    with sessions() as s:
        unmarked = s.scalars(
            select(Message.id).where(Message.status == MessageStatus.queued, Message.enqueued_at.is_(None))
        ).all()
    assert sorted(unmarked) == fresh
    # Repaired: nothing more to do until the fresh ones pass the grace period.
    assert reconcile(sessions, q, grace_seconds=60) == 0
    later = utcnow() + timedelta(seconds=120)
    # While entries wait on both queues, published messages are taken to be among them.
    q.publish("sms", lost_sms)
    q.publish("voice", lost_voice)
    assert reconcile(sessions, q, grace_seconds=60, now=later) == 2
    assert queued_ids(q, "sms") == lost_sms + fresh
    assert published  # not republished: they have enqueued_at and the queue was not empty


def test_a_bulletins_messages_are_published_with_one_mark(sessions, bulletin_id):
    """A new bulletin's messages are created with `enqueued_at`; their publish is recorded once,
    on the bulletin. A bulletin whose mark never came (a crash between commit and publish) has
    its queued messages published again once it is older than the grace period."""
    with sessions() as s, s.begin():
        action_id = s.get(Bulletin, bulletin_id).action_id
        old = utcnow() - timedelta(seconds=600)
        lost = Bulletin(
            action_id=action_id,
            kind=BulletinKind.update,
            seq=1,
            sms_text="x",
            spoken_text="x",
            created_at=old,
        )
        done = Bulletin(
            action_id=action_id,
            kind=BulletinKind.update,
            seq=2,
            sms_text="x",
            spoken_text="x",
            created_at=old,
        )
        s.add_all([lost, done])
        s.flush()
        lost_id, done_id = lost.id, done.id
    lost_msgs = add_messages(sessions, lost_id, 3, "sms", age_s=600, enqueued_at=old)
    add_messages(sessions, lost_id, 1, "sms", age_s=600, enqueued_at=old, status=MessageStatus.delivered)
    done_msgs = add_messages(sessions, done_id, 2, "sms", age_s=600, enqueued_at=old)
    q = MemoryQueue()
    q.publish("sms", [999_999])  # the queue is not empty: only the missing mark tells
    assert publish_messages(sessions, q, {"sms": done_msgs}, done_id) == 2
    with sessions() as s:
        assert s.get(Bulletin, done_id).published_at is not None
        assert s.get(Bulletin, lost_id).published_at is None
        assert s.scalars(select(Message.enqueued_at).where(Message.id.in_(done_msgs))).all() == [old, old]
    drain(q, "sms")
    q.publish("sms", [999_999])

    assert reconcile(sessions, q, grace_seconds=60) == 3
    assert queued_ids(q, "sms") == [999_999, *lost_msgs]
    with sessions() as s:
        assert s.get(Bulletin, lost_id).published_at is not None  # repaired: not published again
    q.publish("sms", [999_999])
    assert reconcile(sessions, q, grace_seconds=60) == 0


def test_reconcile_republishes_what_an_emptied_queue_lost(sessions, bulletin_id):
    """Workers ack only after claiming, so `queued` messages with an empty queue lost their
    entries (Redis restarted without persistence): they are published again."""
    published = add_messages(
        sessions, bulletin_id, 2, "sms", age_s=600, enqueued_at=utcnow() - timedelta(seconds=600)
    )
    recent = add_messages(sessions, bulletin_id, 1, "sms", age_s=600, enqueued_at=utcnow())
    waiting = add_messages(
        sessions, bulletin_id, 1, "voice", age_s=600, enqueued_at=utcnow() - timedelta(seconds=600)
    )
    q = MemoryQueue()
    q.publish("voice", waiting)  # the voice entry is still there; the SMS entries were lost

    assert reconcile(sessions, q, grace_seconds=60) == 2
    assert queued_ids(q, "sms") == published
    assert queued_ids(q, "voice") == waiting
    assert recent  # published within the grace period: possibly still on its way


def test_reconcile_republish_all(sessions, bulletin_id):
    lost = add_messages(sessions, bulletin_id, 1, "sms", age_s=600)
    fresh = add_messages(sessions, bulletin_id, 1, "voice")
    published = add_messages(sessions, bulletin_id, 2, "sms", enqueued_at=utcnow())
    add_messages(sessions, bulletin_id, 1, "sms", status=MessageStatus.cancelled)
    add_messages(sessions, bulletin_id, 1, "voice", status=MessageStatus.answered)
    q = MemoryQueue()  # a new process: the old in-memory content is gone

    assert reconcile(sessions, q, grace_seconds=60, republish_all=True) == 4
    assert queued_ids(q, "sms") == lost + published
    assert queued_ids(q, "voice") == fresh


def test_reconcile_pages_through_many(sessions, bulletin_id):
    sms = add_messages(sessions, bulletin_id, 1500, "sms", age_s=600)
    voice = add_messages(sessions, bulletin_id, 700, "voice", age_s=600)
    q = MemoryQueue()
    assert reconcile(sessions, q, grace_seconds=60) == 2200
    assert queued_ids(q, "sms") == sms and queued_ids(q, "voice") == voice
    assert reconcile(sessions, q, grace_seconds=60) == 0


def test_claim_owns_each_message_once(sessions, bulletin_id):
    ids = add_messages(sessions, bulletin_id, 3, "sms")
    [cancelled] = add_messages(sessions, bulletin_id, 1, "sms", status=MessageStatus.cancelled)

    with sessions() as s, s.begin():
        assert claim(s, [ids[1], ids[0], ids[0], cancelled]) == [ids[0], ids[1]]
    # A duplicated queue entry for the same message: nothing to send the second time.
    with sessions() as s, s.begin():
        assert claim(s, [ids[0], ids[2]]) == [ids[2]]
        assert claim(s, [ids[0]]) == []
        assert claim(s, []) == []

    with sessions() as s:
        rows = {m.id: m for m in s.scalars(select(Message))}
    assert all(rows[i].status == MessageStatus.sending and rows[i].attempts == 1 for i in ids)
    assert rows[cancelled].status == MessageStatus.cancelled and rows[cancelled].attempts == 0


def test_duplicate_queue_entries_lead_to_one_send(sessions, bulletin_id):
    ids = add_messages(sessions, bulletin_id, 2, "sms", age_s=600)
    q = MemoryQueue()
    publish_messages(sessions, q, {"sms": ids})
    reconcile(sessions, q, grace_seconds=60, republish_all=True)  # every id twice now
    sent: list[int] = []
    for d in drain(q, "sms"):
        with sessions() as s, s.begin():
            sent += claim(s, [d.message_id])
    assert sent == ids


def test_renew_extends_only_the_workers_old_leases(sessions, bulletin_id):
    from gateway.queue.lease import renew

    old, young, others = (add_messages(sessions, bulletin_id, 2, "sms") for _ in range(3))
    start = utcnow()
    with sessions() as s, s.begin():
        claim(s, old, "w1")
        claim(s, young, "w1")
        claim(s, others, "w2")
        s.execute(
            Message.__table__.update()
            .where(Message.id.in_(old + others))
            .values(claimed_at=start - timedelta(seconds=40))
        )
    now = start + timedelta(seconds=1)
    with sessions() as s, s.begin():
        assert renew(s, "w1", now, older_than=timedelta(seconds=15)) == 2
    with sessions() as s:
        leased = dict(s.execute(select(Message.id, Message.claimed_at)).all())

    def as_utc(t):
        return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t

    assert all(as_utc(leased[i]) == as_utc(now) for i in old)  # renewed
    assert all(as_utc(leased[i]) < as_utc(now) - timedelta(seconds=0.5) for i in young)  # recent: left
    assert all(as_utc(leased[i]) < as_utc(start) for i in others)  # another worker's: left
    with sessions() as s, s.begin():
        assert renew(s, "w1", now) == 4  # without `older_than`: every lease it holds


def test_a_bulletin_settles_once_none_of_its_messages_is_open(sessions, bulletin_id):
    """The scans for open messages read only unsettled bulletins (gateway/queue/settle.py): a
    bulletin settles once it is fanned out and nothing of it is queued or sending, not before."""
    from gateway.queue.settle import settle

    lost = add_messages(sessions, bulletin_id, 2, "sms", age_s=600)  # publish lost: open
    [claimed] = add_messages(sessions, bulletin_id, 1, "sms", age_s=600)
    add_messages(sessions, bulletin_id, 1, "sms", status=MessageStatus.delivered)
    fanning_out = new_bulletin(sessions)  # no messages yet, fanned_out_at NULL: the fan-out is under way
    with sessions() as s, s.begin():
        claim(s, [claimed], "w1")
        assert settle(s) == 0
        s.get(Bulletin, bulletin_id).fanned_out_at = utcnow()
    with sessions() as s, s.begin():
        assert settle(s) == 0  # fanned out, but three messages still open
        s.execute(Message.__table__.update().where(Message.id.in_(lost)).values(status=MessageStatus.failed))
    with sessions() as s, s.begin():
        assert settle(s) == 0  # one is still sending
        s.execute(
            Message.__table__.update().where(Message.id == claimed).values(status=MessageStatus.submitted)
        )
    with sessions() as s, s.begin():
        assert settle(s) == 1
        assert settle(s) == 0
    with sessions() as s:
        assert s.get(Bulletin, bulletin_id).settled_at is not None
        assert s.get(Bulletin, fanning_out).settled_at is None


def test_reconcile_and_upkeep_settle_what_is_done(sessions, bulletin_id):
    from gateway.queue import upkeep

    ids = add_messages(
        sessions, bulletin_id, 2, "sms", age_s=600, enqueued_at=utcnow(), status=MessageStatus.delivered
    )
    other = new_bulletin(sessions)
    add_messages(sessions, other, 1, "sms", status=MessageStatus.failed)
    with sessions() as s, s.begin():
        for b in (bulletin_id, other):
            s.get(Bulletin, b).fanned_out_at = utcnow()
    q = MemoryQueue()
    reconcile(sessions, q, grace_seconds=60)
    with sessions() as s:
        assert s.get(Bulletin, bulletin_id).settled_at is not None and len(ids) == 2
        s.get(Bulletin, other).settled_at = None
        s.commit()
    upkeep(sessions, q, "sms", "w1", lease_seconds=60)
    with sessions() as s:
        assert s.get(Bulletin, other).settled_at is not None


def test_lease_upkeep_outlives_a_database_outage_and_a_bug(caplog):
    """The workers' lease loop (`keep_up`) goes on after a failed round: a database that cannot be
    reached (nothing listens on the port) is one line in the log, a bug a traceback."""
    from gateway.queue import keep_up, upkeep
    from gateway.storage.db import make_engine, session_factory

    away = make_engine("postgresql+psycopg://postgres@127.0.0.1:9/burgernet")  # port 9: connection refused
    rounds: list[list[int]] = []

    def one_round(holding: list[int]) -> None:
        rounds.append(holding)
        if len(rounds) == 1:
            upkeep(session_factory(away), MemoryQueue(), "voice", "w1", 60, holding)
        elif len(rounds) == 2:
            raise KeyError("a bug")

    async def three_rounds():
        loop = asyncio.create_task(keep_up(one_round, lambda: [7], 0.04, "voice worker"))
        await until_async(lambda: len(rounds) >= 3, timeout=20, what="three upkeep rounds", every=0.01)
        loop.cancel()

    with caplog.at_level(logging.WARNING, logger="gateway.queue.lease"):
        asyncio.run(asyncio.wait_for(three_rounds(), 30))
    away.dispose()
    outage, bug = [r for r in caplog.records if r.name == "gateway.queue.lease"][:2]
    assert (outage.levelno, outage.exc_info) == (logging.WARNING, None)
    assert (
        outage.getMessage().startswith("voice worker: lease upkeep failed (")
        and "\n" not in outage.getMessage()
    )
    assert bug.levelno == logging.ERROR and bug.exc_info[0] is KeyError
    assert rounds[:3] == [[7], [7], [7]]


def test_status_writes_are_hot_updates(pg_sessions):
    """The point of `message` having no status index and room on its pages (models.Message):
    PostgreSQL writes the claim and the outcome as HOT updates, touching no index."""
    bulletin = new_bulletin(pg_sessions)
    ids = add_messages(pg_sessions, bulletin, 500, "sms")

    def counts() -> tuple[int, int]:
        with pg_sessions() as s:
            s.execute(text("SELECT pg_stat_clear_snapshot()"))
            return tuple(
                s.execute(
                    text(
                        "SELECT pg_stat_get_tuples_updated('message'::regclass),"
                        " pg_stat_get_tuples_hot_updated('message'::regclass)"
                    )
                ).one()
            )

    def flushing_stats(s) -> None:  # this backend's counts reach the shared ones at its commit
        s.execute(text("SELECT pg_stat_force_next_flush()"))

    updated, hot_updated = counts()
    with pg_sessions() as s, s.begin():
        assert claim(s, ids, "w1") == ids
        flushing_stats(s)
    with pg_sessions() as s, s.begin():  # as the worker writes outcomes: its own transaction
        s.execute(
            Message.__table__.update()
            .where(Message.id.in_(ids))
            .values(
                status=MessageStatus.delivered,
                provider_id="0123456789abcdef",
                sent_at=utcnow(),
                final_at=utcnow(),
                detail=None,
            )
        )
        flushing_stats(s)
    after, hot_after = counts()
    assert after - updated == 1000
    assert hot_after - hot_updated == 1000


def test_array_literals_reach_postgresql_intact(pg_sessions):
    """The launch's bulk insert passes arrays as literals (gateway.storage.postgresql.pg_ints …):
    every value must arrive as it was, whatever characters a phone number field holds."""
    texts = ['a"b', "c\\d", "x,y}", "", " sp ", "NULL", "{}", "é€", '\\"', '"']
    ints = [1, 2**40, -3]
    with pg_sessions() as s:
        # With and without NULLs: each has its own way of building the literal.
        for t, i in ((texts, ints), ([*texts[:2], None, *texts[2:]], [None, *ints]), ([], [])):
            row = s.execute(
                text("SELECT CAST(:t AS varchar[]), CAST(:i AS bigint[])"),
                {"t": pg_texts(t), "i": pg_ints(i)},
            ).one()
            assert row == (t, i)
    with pytest.raises(ValueError, match="NUL"):
        pg_texts(["a\0b"])


def test_a_big_insert_refreshes_the_planners_statistics(pg_sessions):
    """Until autovacuum comes by, a table that grew by a launch still looks small to PostgreSQL,
    which then plans the workers' keyed batch writes as whole-table scans."""
    reltuples = text("SELECT reltuples FROM pg_class WHERE relname = 'message'")
    last_analyze = text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'message'")
    with pg_sessions() as s:
        assert s.scalar(reltuples) < 3000  # emptied: -1 (never analyzed) or 0
    add_messages(pg_sessions, new_bulletin(pg_sessions), 3000)  # a launch adds 3,000 rows
    with pg_sessions() as s, s.begin():
        refresh_statistics_after_growth(s, "message", 3000)
        assert s.scalar(reltuples) >= 3000
    with pg_sessions() as s:
        analyzed = s.scalar(last_analyze)
    assert analyzed is not None
    with pg_sessions() as s, s.begin():
        refresh_statistics_after_growth(s, "message", 10)  # small growth: no ANALYZE
    with pg_sessions() as s:
        assert s.scalar(last_analyze) == analyzed


def test_a_busy_table_does_not_hold_up_the_launch_for_its_statistics(pg_sessions, pg_url):
    """Another transaction holding the table's ANALYZE lock (autovacuum, a concurrent launch):
    the refresh gives up after a moment, and the launch's transaction goes on as before."""
    add_messages(pg_sessions, new_bulletin(pg_sessions), 1500)
    engine = make_engine(pg_url)
    try:
        with engine.connect() as other:
            other.execute(text("LOCK TABLE message IN SHARE UPDATE EXCLUSIVE MODE"))
            with pg_sessions() as s, s.begin():
                before = s.scalar(text("SHOW lock_timeout"))
                started = time.monotonic()
                refresh_statistics_after_growth(s, "message", 1500)
                assert time.monotonic() - started < 2
                assert s.scalar(text("SHOW lock_timeout")) == before
                assert s.scalar(text("SELECT count(*) FROM message")) == 1500  # the transaction is fine
            other.rollback()
    finally:
        engine.dispose()
