"""The action lifecycle through the API, on PostgreSQL and SQLite: create → launch → update → close."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from gateway.actions import lifecycle
from gateway.housekeeping import expire_actions
from gateway.outbox import drain
from gateway.storage.models import (
    Action,
    ActionStatus,
    Address,
    Bulletin,
    BulletinKind,
    Message,
    MessageStatus,
    Participant,
)
from gateway.targeting.geo import destination, tile_of

UTRECHT = (52.0907, 5.1214)


def populate(api, n=12):
    """n participants inside 2 km of Utrecht (every third by voice), one sharing a number, one far away."""
    with api.sessions() as s:
        for i in range(n):
            lat, lon = destination(*UTRECHT, i * 30, 100 + i * 100)
            p = Participant(municipality_id=api.utrecht.id, name=f"P{i}", phone=f"+316000000{i:02d}")
            p.addresses = [
                Address(
                    postcode="3511 AB",
                    house_number=str(i + 1),
                    lat=lat,
                    lon=lon,
                    tile=tile_of(lat, lon),
                    channel="voice" if i % 3 == 0 else "sms",
                )
            ]
            s.add(p)
        twin = Participant(municipality_id=api.zeist.id, name="Twin", phone="+31600000001")
        twin.addresses = [
            Address(
                postcode="3701 AA",
                house_number="1",
                lat=UTRECHT[0],
                lon=UTRECHT[1],
                tile=tile_of(*UTRECHT),
                channel="sms",
            )
        ]
        far = Participant(municipality_id=api.utrecht.id, name="Far", phone="+31699999999")
        far.addresses = [
            Address(
                postcode="1012 AB",
                house_number="1",
                lat=52.37,
                lon=4.89,
                tile=tile_of(52.37, 4.89),
                channel="sms",
            )
        ]
        s.add_all([twin, far])
        s.commit()
    return n  # distinct numbers inside the circle


def new_action(api, **overrides):
    body = {
        "type": "burglary",
        "description": "Man in donkere kleding, rende richting het station.",
        "lat": UTRECHT[0],
        "lon": UTRECHT[1],
        "radius_m": 2000,
        "channels": ["sms", "voice"],
        **overrides,
    }
    return api.call("centralist", "POST", "/api/v1/actions", expect=201, json=body)


def messages(api, action_id, kind=None):
    with api.sessions() as s:
        stmt = select(Message.phone, Message.channel, Message.status).where(Message.action_id == action_id)
        if kind:
            stmt = stmt.join(Bulletin).where(Bulletin.kind == kind)
        return s.execute(stmt).all()


def test_preview_counts_what_launch_queues(api):
    inside = populate(api)
    action = new_action(api)
    preview = api.call("centralist", "GET", f"/api/v1/actions/{action['id']}/preview")
    assert preview["total"] == inside
    assert preview["recipients"] == {"sms": 8, "voice": 4}
    assert preview["sms"]["encoding"] == "gsm7" and preview["sms"]["part_count"] == 1
    assert preview["spoken_text"].startswith("Hier volgt een oproep voor Burgernet.")

    launched = api.call("centralist", "POST", f"/api/v1/actions/{action['id']}/launch")
    assert launched["queued"] == preview["recipients"]
    assert launched["action"]["status"] == "open"
    code = launched["action"]["action_code"]
    assert code.isdigit() and len(code) == 4
    sent = messages(api, action["id"])
    assert len(sent) == len({phone for phone, _, _ in sent}) == inside
    # Every queued id is on the channel's queue, once.
    assert api.queue.backlog("sms") == 8 and api.queue.backlog("voice") == 4
    with api.sessions() as s:
        alert = s.scalars(select(Bulletin).where(Bulletin.action_id == action["id"])).one()
        assert f"actiecode {code}" in alert.sms_text
        assert ", ".join(code) in alert.spoken_text  # digits spoken one by one


def test_launching_twice_does_not_queue_twice(api):
    populate(api)
    action = new_action(api)
    api.call("centralist", "POST", f"/api/v1/actions/{action['id']}/launch")
    again = api.call("centralist", "POST", f"/api/v1/actions/{action['id']}/launch", expect=409)
    assert again["error_id"] == "conflict"
    assert len(messages(api, action["id"])) == 12
    assert api.queue.backlog("sms") + api.queue.backlog("voice") == 12


def test_concurrent_launches_open_the_action_once(api):
    populate(api)
    action = new_action(api)
    results, barrier = [], threading.Barrier(4)

    def attempt():
        barrier.wait()
        with api.sessions() as s:
            try:
                lifecycle.launch(s, action["id"], datetime.now(UTC), api.settings)
                s.commit()
                results.append("launched")
            except Exception as exc:
                s.rollback()
                results.append(type(exc).__name__)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("launched") == 1, results
    assert len(messages(api, action["id"])) == 12


def test_an_update_goes_to_the_same_numbers_on_the_same_channels(api):
    populate(api)
    action = new_action(api)
    api.call("centralist", "POST", f"/api/v1/actions/{action['id']}/launch")
    for seq in (1, 2):
        r = api.call(
            "centralist",
            "POST",
            f"/api/v1/actions/{action['id']}/updates",
            expect=201,
            json={"text": f"Aanvulling {seq}: hij draagt een rode pet."},
        )
        assert r["queued"] == {"sms": 8, "voice": 4}
    alert = sorted((p, c) for p, c, _ in messages(api, action["id"], BulletinKind.alert))
    updates = sorted((p, c) for p, c, _ in messages(api, action["id"], BulletinKind.update))
    assert updates == sorted(alert * 2)


def test_closing_reaches_every_number_reached_exactly_once_and_cancels_the_rest(api):
    populate(api)
    action = new_action(api)
    aid = action["id"]
    api.call("centralist", "POST", f"/api/v1/actions/{aid}/launch")
    drain(api.sessions, api.queue, "sms")  # the SMS went out; the voice calls are still queued
    api.call(
        "centralist",
        "POST",
        f"/api/v1/actions/{aid}/updates",
        expect=201,
        json={"text": "Hij heeft een fiets."},
    )
    drain(api.sessions, api.queue, "sms")
    with api.sessions() as s:  # one SMS failed for good: that number was not reached
        s.execute(
            update(Message)
            .where(Message.action_id == aid, Message.phone == "+31600000001")
            .values(status=MessageStatus.failed)
        )
        s.commit()

    closed = api.call(
        "centralist",
        "POST",
        f"/api/v1/actions/{aid}/close",
        json={"outcome": "direct", "outcome_detail": "arrest"},
    )
    assert closed["action"]["status"] == "closed" and closed["action"]["outcome"] == "direct"
    closing = messages(api, aid, BulletinKind.closing)
    reached = {p for p, c, st in messages(api, aid, BulletinKind.alert) if c == "sms"} - {"+31600000001"}
    assert sorted(p for p, _, _ in closing) == sorted(reached)  # once per number, SMS only
    # The voice alerts and updates that had not gone out are cancelled, not sent after the close.
    voice = [st for _, c, st in messages(api, aid) if c == "voice"]
    assert voice and set(voice) == {MessageStatus.cancelled}
    with api.sessions() as s:
        text = s.scalar(
            select(Bulletin.sms_text).where(Bulletin.action_id == aid, Bulletin.kind == BulletinKind.closing)
        )
    assert "aangehouden" in text

    again = api.call(
        "centralist", "POST", f"/api/v1/actions/{aid}/close", expect=409, json={"outcome": "none"}
    )
    assert again["error_id"] == "conflict"
    assert len(messages(api, aid, BulletinKind.closing)) == len(closing)
    api.call("centralist", "POST", f"/api/v1/actions/{aid}/updates", expect=409, json={"text": "te laat"})


def test_action_codes_are_unique_among_open_actions(api):
    codes = []
    for _ in range(25):
        a = new_action(api)
        codes.append(
            api.call("centralist", "POST", f"/api/v1/actions/{a['id']}/launch")["action"]["action_code"]
        )
    assert len(set(codes)) == len(codes)

    # The database enforces it too, and lets a closed action keep a code an open one uses.
    with api.sessions() as s:
        template = s.get(Action, 1)
        twin = {
            "type": template.type,
            "description": "x",
            "lat": 0.0,
            "lon": 0.0,
            "radius_m": 1,
            "centralist_id": template.centralist_id,
            "action_code": codes[0],
        }
        s.add(Action(**twin, status=ActionStatus.closed))
        s.commit()
        s.add(Action(**twin, status=ActionStatus.open))
        with pytest.raises(IntegrityError):
            s.commit()


def test_forgotten_open_actions_expire_with_a_closing_message(api):
    populate(api)
    action = new_action(api)
    api.call("centralist", "POST", f"/api/v1/actions/{action['id']}/launch")
    drain(api.sessions, api.queue, "sms")
    drain(api.sessions, api.queue, "voice")
    later = datetime.now(UTC) + timedelta(minutes=api.settings.action_expiry_minutes, seconds=1)
    assert expire_actions(api.sessions, api.queue, later) == 1
    assert expire_actions(api.sessions, api.queue, later) == 0
    got = api.call("centralist", "GET", f"/api/v1/actions/{action['id']}")
    assert got["status"] == "closed" and got["expired"] is True and got["outcome"] is None
    assert len(messages(api, action["id"], BulletinKind.closing)) == 12


def test_a_launch_with_nobody_in_range_opens_the_action_and_queues_nothing(api):
    action = new_action(api, lat=53.4, lon=6.2, radius_m=100)  # Wadden Sea
    launched = api.call("centralist", "POST", f"/api/v1/actions/{action['id']}/launch")
    assert launched["queued"] == {} and launched["action"]["status"] == "open"
    closed = api.call("centralist", "POST", f"/api/v1/actions/{action['id']}/close", json={"outcome": "none"})
    assert closed["queued"] == {}


def test_only_drafts_can_be_edited(api):
    action = new_action(api)
    edited = api.call(
        "centralist", "PATCH", f"/api/v1/actions/{action['id']}", json={"radius_m": 3000, "channels": ["sms"]}
    )
    assert edited["radius_m"] == 3000 and edited["channels"] == ["sms"]
    api.call("centralist", "POST", f"/api/v1/actions/{action['id']}/launch")
    api.call("centralist", "PATCH", f"/api/v1/actions/{action['id']}", expect=409, json={"radius_m": 1000})


def test_progress_counts_messages_by_status(api):
    populate(api)
    action = new_action(api)
    api.call("centralist", "POST", f"/api/v1/actions/{action['id']}/launch")
    drain(api.sessions, api.queue, "sms")
    rows = api.call("centralist", "GET", f"/api/v1/actions/{action['id']}/progress")
    assert {(r["channel"], r["status"]): r["count"] for r in rows} == {
        ("sms", "submitted"): 8,
        ("voice", "queued"): 4,
    }


def test_a_lost_publish_is_repaired_by_the_reconciler(api):
    """A crash between committing the messages and publishing them leaves them queued but not on
    the queue; the reconciler puts them back, and the claim makes duplicates harmless."""
    from gateway.queue import MemoryQueue, reconcile

    populate(api)
    action = new_action(api)
    with api.sessions() as s:
        lifecycle.launch(s, action["id"], datetime.now(UTC), api.settings)
        s.commit()  # … and the process dies before publish_messages
    fresh = MemoryQueue()
    assert reconcile(api.sessions, fresh, grace_seconds=0) == 12
    assert reconcile(api.sessions, fresh, grace_seconds=0) == 0  # now marked as enqueued
    with api.sessions() as s:
        fresh.publish("sms", s.scalars(select(Message.id).where(Message.channel == "sms")).all())
    assert drain(api.sessions, fresh, "sms") == 8  # each SMS once, although queued twice
    with api.sessions() as s:
        assert s.scalar(select(func.max(Message.attempts))) == 1


def test_messages_whose_queue_entries_vanished_are_queued_again(api, redis_url, key_prefix):
    """Redis restarted without persistence: the stream is gone but the database still says
    `queued`. Once the channel's queue is empty, the reconciler publishes them again."""
    import redis

    from gateway.queue import RedisStreamQueue, publish_messages, reconcile

    populate(api)
    queue = RedisStreamQueue(redis_url, prefix=key_prefix)
    action = new_action(api)
    with api.sessions() as s:
        queued = lifecycle.launch(s, action["id"], datetime.now(UTC), api.settings)
        s.commit()
    publish_messages(api.sessions, queue, queued.ids_by_channel, queued.bulletin_id)
    later = datetime.now(UTC) + timedelta(seconds=61)
    assert reconcile(api.sessions, queue, grace_seconds=60, now=later) == 0  # all still on the queue

    redis.Redis.from_url(redis_url).delete(queue.key("sms", queued.bulletin_id))  # the data loss
    assert reconcile(api.sessions, queue, grace_seconds=60, now=later) == 8  # the SMS, not the calls
    assert drain(api.sessions, queue, "sms") == 8
    assert drain(api.sessions, queue, "voice") == 4
    assert reconcile(api.sessions, queue, grace_seconds=60, now=later) == 0
    queue.close()


# --- a launch's fan-out: the first recipients at once, the rest in chunks (gateway/actions/fanout.py)


def alert_bulletin(api, action_id):
    with api.sessions() as s:
        return s.scalars(
            select(Bulletin).where(Bulletin.action_id == action_id, Bulletin.kind == BulletinKind.alert)
        ).one()


def queued_ids(queue, channel):
    """Every id on `channel`'s queue, taken off it (acked)."""
    ids = []
    while deliveries := queue.consume(channel, "test", count=1000, block_ms=0):
        ids.extend(d.message_id for d in deliveries)
        queue.ack(channel, [d.entry_id for d in deliveries])
    return ids


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(lifecycle, "FAN_OUT_FIRST", 3)
    monkeypatch.setattr(lifecycle, "FAN_OUT_LARGEST", 4)


def launch_first_chunk(api, action_id):
    """A launch whose process dies after committing and publishing its first chunk."""
    from gateway.queue import publish_messages

    with api.sessions() as s:
        queued = lifecycle.launch(s, action_id, datetime.now(UTC), api.settings)
        s.commit()
    publish_messages(
        api.sessions, api.queue, queued.ids_by_channel, queued.bulletin_id, last=queued.fan_out_after is None
    )
    return queued


def test_a_launch_queues_its_recipients_in_chunks_each_once(api, small_chunks):
    populate(api)
    action = new_action(api)
    r = api.call("centralist", "POST", f"/api/v1/actions/{action['id']}/launch")
    assert r["queued"] == {"sms": 8, "voice": 4}
    sms, voice = queued_ids(api.queue, "sms"), queued_ids(api.queue, "voice")
    assert (len(sms), len(voice)) == (8, 4)
    with api.sessions() as s:
        ids = s.scalars(select(Message.id).where(Message.action_id == action["id"])).all()
    assert sorted(sms + voice) == sorted(ids)  # every message on the queue, once
    bulletin = alert_bulletin(api, action["id"])
    assert bulletin.fanned_out_at is not None and bulletin.published_at is not None


def test_an_interrupted_fan_out_is_completed_by_housekeeping(api, small_chunks, redis_url, key_prefix):
    from gateway.actions.fanout import repair
    from gateway.tipline.lookup import RouteCache

    cache = RouteCache(redis_url, prefix=key_prefix)
    cache.mark_complete()  # as after a rebuild: it holds every open action
    populate(api)
    action = new_action(api)
    queued = launch_first_chunk(api, action["id"])
    with api.sessions() as s, s.begin():  # one more chunk, committed but never published: the crash
        chunk = lifecycle.fan_out_step(s, queued.bulletin_id, queued.fan_out_after, datetime.now(UTC), size=4)
    assert chunk.count > 0 and chunk.fan_out_after is not None
    created = queued.count + chunk.count
    assert len(messages(api, action["id"])) == created < 12
    assert alert_bulletin(api, action["id"]).fanned_out_at is None
    # Updates go to everyone the alert went to: not before the alert has them all.
    busy = api.call(
        "centralist",
        "POST",
        f"/api/v1/actions/{action['id']}/updates",
        expect=409,
        json={"text": "Aanvulling: hij draagt een rode pet."},
    )
    assert busy["error_id"] == "conflict" and "still being queued" in busy["message"]

    # The missing ones created, the unpublished chunk published.
    assert repair(api.sessions, api.queue, grace_seconds=0, route_cache=cache) >= 12 - queued.count
    phones = sorted(p for p, _, _ in messages(api, action["id"]))
    assert phones == sorted(f"+316000000{i:02d}" for i in range(12))
    # The tip line knows every number, the last ones created by the repair too.
    assert [[a.action_id for a in cache.alerts_for(p)] for p in phones] == [[action["id"]]] * 12
    cache.close()
    bulletin = alert_bulletin(api, action["id"])
    assert bulletin.fanned_out_at is not None and bulletin.published_at is not None
    assert drain(api.sessions, api.queue, "sms") == 8  # each once, however often queued
    assert drain(api.sessions, api.queue, "voice") == 4
    assert repair(api.sessions, api.queue, grace_seconds=0) == 0
    r = api.call(
        "centralist",
        "POST",
        f"/api/v1/actions/{action['id']}/updates",
        expect=201,
        json={"text": "Aanvulling: hij draagt een rode pet."},
    )
    assert r["queued"] == {"sms": 8, "voice": 4}


def test_the_tip_line_learns_the_numbers_of_a_launch_that_died_before_telling_it(api, redis_url, key_prefix):
    """A crash between the launch's commit and its publish: the repair republishes the messages
    and puts the action's numbers in the tip line's route cache (the launch never did)."""
    from gateway.actions.fanout import repair
    from gateway.tipline.lookup import RouteCache

    cache = RouteCache(redis_url, prefix=key_prefix)
    cache.mark_complete()
    populate(api)
    action = new_action(api)
    with api.sessions() as s:
        lifecycle.launch(s, action["id"], datetime.now(UTC), api.settings)
        s.commit()  # … and the process dies
    phones = sorted(p for p, _, _ in messages(api, action["id"]))
    assert all(cache.alerts_for(p) == [] for p in phones)
    assert repair(api.sessions, api.queue, grace_seconds=0, route_cache=cache) == 12
    assert [[a.action_id for a in cache.alerts_for(p)] for p in phones] == [[action["id"]]] * 12
    cache.close()


def test_a_close_during_the_fan_out_stops_it(api, small_chunks):
    populate(api)
    action = new_action(api)
    queued = launch_first_chunk(api, action["id"])
    api.call("centralist", "POST", f"/api/v1/actions/{action['id']}/close", json={"outcome": "none"})
    with api.sessions() as s, s.begin():
        assert (
            lifecycle.fan_out_step(s, queued.bulletin_id, queued.fan_out_after, datetime.now(UTC), size=4)
            is None
        )
    alert = messages(api, action["id"], BulletinKind.alert)
    assert len(alert) == queued.count and {st for _, _, st in alert} == {MessageStatus.cancelled}
    assert alert_bulletin(api, action["id"]).fanned_out_at is not None  # nothing left for housekeeping


def test_a_close_waits_for_the_chunk_being_created_and_cancels_it(api, small_chunks):
    """PostgreSQL, two connections: the close comes while a chunk's transaction is open. It waits
    for that chunk, then cancels it with the rest of the queued alerts; the next chunk sees the
    action closed."""
    if api.sessions.kw["bind"].dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL only (SQLite has a single writer)")
    populate(api)
    action = new_action(api)
    queued = launch_first_chunk(api, action["id"])
    closed = threading.Event()

    def close():
        api.call("centralist", "POST", f"/api/v1/actions/{action['id']}/close", json={"outcome": "none"})
        closed.set()

    with api.sessions() as s, s.begin():
        chunk = lifecycle.fan_out_step(s, queued.bulletin_id, queued.fan_out_after, datetime.now(UTC), size=4)
        closer = threading.Thread(target=close)
        closer.start()
        assert not closed.wait(0.5)  # held by this chunk's locks
    closer.join(10)
    assert closed.is_set() and chunk.count > 0
    with api.sessions() as s, s.begin():
        assert (
            lifecycle.fan_out_step(s, queued.bulletin_id, chunk.fan_out_after, datetime.now(UTC), size=4)
            is None
        )
    alert = messages(api, action["id"], BulletinKind.alert)
    assert len(alert) == queued.count + chunk.count and {st for _, _, st in alert} == {
        MessageStatus.cancelled
    }


def test_a_launch_whose_fan_out_fails_midway_still_answers_and_is_completed(api, small_chunks, monkeypatch):
    """The database goes away after the launch's commit: the launch happened (200, what was
    queued), and housekeeping creates the rest."""
    from sqlalchemy.exc import OperationalError

    from gateway.actions.fanout import repair

    populate(api)
    action = new_action(api)
    step = lifecycle.fan_out_step
    calls = []

    def failing_second(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise OperationalError("INSERT …", {}, Exception("server closed the connection unexpectedly"))
        return step(*args, **kw)

    monkeypatch.setattr(lifecycle, "fan_out_step", failing_second)
    r = api.call("centralist", "POST", f"/api/v1/actions/{action['id']}/launch")
    # The first page (…00 of the 3 registrations …00, …01, …01) and the next (…01 twice, …02):
    # a page ends with a whole number.
    assert sum(r["queued"].values()) == 3
    assert r["action"]["status"] == "open"
    monkeypatch.setattr(lifecycle, "fan_out_step", step)
    repair(api.sessions, api.queue, grace_seconds=0)
    assert len(messages(api, action["id"])) == 12
    assert drain(api.sessions, api.queue, "sms") + drain(api.sessions, api.queue, "voice") == 12
