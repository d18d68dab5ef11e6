"""The tip log through Redis: records in any order or twice give the same rows; the tip writer
acknowledges only after the commit, so a writer killed at any point loses nothing and doubles
nothing; records the database refuses go to the dead-letter stream; an IVR whose Redis is away
writes the tip itself."""

import dataclasses
import itertools
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
from polling import until
from sqlalchemy import func, select

from gateway.storage.models import MatchedBy, Tip
from gateway.tipline.lookup import RouteCache
from gateway.tipline.routing import OpenAlert, Route, Step
from gateway.tipline.tips import CallEnded, CallOpened, record_calls
from gateway.tipline.tipstream import TipStream, TipStreamWriter, decode, encode
from ivr import simulator as agi_client
from ivr.context import IvrContext
from ivr.handlers import registry
from ivr.server import FastAGIServer

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
MELDKAMER = "PJSIP/meldkamer@mk"


def alert(api_action: dict) -> OpenAlert:
    return OpenAlert(api_action["id"], api_action["action_code"], "PJSIP/4021@mk", T0)


def a_call(call_id: str, action: OpenAlert | None) -> tuple[CallOpened, CallOpened, CallEnded]:
    """A caller asked for the code (opened undecided), keyed it (routed), was put through (ended)."""
    asked = CallOpened(call_id, None, Route(Step.ask_code), None, T0)
    routed = CallOpened(
        call_id,
        None,
        Route(Step.centralist, MatchedBy.action_code, action),
        action.dial_string if action else MELDKAMER,
        T0 + timedelta(seconds=9),
    )
    ended = CallEnded(
        call_id,
        T0 + timedelta(minutes=2),
        dial_status="NOANSWER",
        routed_to=MELDKAMER,
        recording_path="/rec/x.wav",
    )
    return asked, routed, ended


def row(sessions, call_id: str) -> tuple:
    with sessions() as s:
        t = s.scalars(select(Tip).where(Tip.call_id == call_id)).one()
        return (
            t.received_at,
            t.ended_at,
            t.matched_by,
            t.action_id,
            t.routed_to,
            t.dial_status,
            t.recording_path,
        )


def count(sessions, like: str = "%") -> int:
    with sessions() as s:
        return s.scalar(select(func.count(Tip.id)).where(Tip.call_id.like(like)))


# --- the SQL side: order and repetition do not matter ------------------------------------------------


def test_a_calls_records_in_any_order_and_twice_give_the_same_row(api):
    action = alert(api.launch())
    expected = (
        T0,
        T0 + timedelta(minutes=2),
        MatchedBy.action_code,
        action.action_id,
        MELDKAMER,
        "NOANSWER",
        "/rec/x.wav",
    )
    for n, order in enumerate(itertools.permutations(a_call("x", action))):
        call_id = f"perm{n}"
        records = [dataclasses.replace(r, call_id=call_id) for r in order]
        with api.sessions() as s, s.begin():
            record_calls(s, records)  # all in one batch
        for record in records + records:  # then one by one, each twice: replays after a crash
            with api.sessions() as s, s.begin():
                record_calls(s, [record])
        assert row(api.sessions, call_id) == expected, order


def test_an_end_without_opening_is_still_a_tip(api):
    with api.sessions() as s, s.begin():
        record_calls(s, [CallEnded("lonely", T0, dial_status="ANSWER", talk_seconds=12)])
    assert row(api.sessions, "lonely")[:2] == (T0, T0)


def test_records_survive_the_stream_encoding():
    action = OpenAlert(7, "4821", "PJSIP/4021@mk", T0)
    for record in (
        *a_call("enc", action),
        CallOpened("enc2", "+31612345678", Route(Step.meldkamer), MELDKAMER, T0),
        CallEnded("enc3", T0),
    ):
        assert decode({k.encode(): v.encode() for k, v in encode(record).items()}) == record
    with pytest.raises((KeyError, ValueError)):
        decode({b"kind": b"opened", b"call": b"x"})


# --- the writer ---------------------------------------------------------------------------------


@pytest.fixture
def client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def stream(redis_url, key_prefix):
    stream = TipStream(redis_url, prefix=key_prefix)
    yield stream
    stream.close()


class Crash(BaseException):
    """The writer process dies here (not an Exception: nothing may catch it)."""


class DiesBeforeCommit(TipStreamWriter):
    def _commit(self, records):
        raise Crash


class DiesAfterCommit(TipStreamWriter):
    def _commit(self, records):
        super()._commit(records)
        raise Crash


def pending(client: redis.Redis, stream: TipStream) -> int:
    try:
        return client.xpending(stream.key, "tip-writers")["pending"]
    except redis.ResponseError:  # no group yet
        return 0


def flood(stream: TipStream, action: OpenAlert, calls: int, prefix: str = "f") -> None:
    for n in range(calls):
        for record in a_call(f"{prefix}{n}", action):
            stream.append(dataclasses.replace(record, call_id=f"{prefix}{n}"))


@pytest.mark.parametrize("writer_class", [DiesBeforeCommit, DiesAfterCommit])
def test_a_writer_killed_before_or_after_its_commit_loses_and_doubles_nothing(
    api, stream, client, writer_class
):
    action = alert(api.launch())
    flood(stream, action, 40)
    with pytest.raises(Crash):
        writer_class(stream, api.sessions, "w1", batch=50).run_once()
    assert client.xlen(stream.key) == 120  # nothing acknowledged
    restarted = TipStreamWriter(stream, api.sessions, "w1", batch=50)
    restarted.drain()
    assert count(api.sessions) == 40
    assert {row(api.sessions, f"f{n}") for n in range(40)} == {
        (
            T0,
            T0 + timedelta(minutes=2),
            MatchedBy.action_code,
            action.action_id,
            MELDKAMER,
            "NOANSWER",
            "/rec/x.wav",
        )
    }


def test_another_writer_takes_over_what_a_dead_one_left(api, stream, client):
    action = alert(api.launch())
    flood(stream, action, 10)
    with pytest.raises(Crash):
        DiesBeforeCommit(stream, api.sessions, "gone").run_once()
    other = TipStreamWriter(stream, api.sessions, "other", claim_idle_ms=50)

    def all_written() -> bool:
        other.run_once(block_ms=50)
        return count(api.sessions) >= 10

    until(all_written, timeout=10, what="the other writer to write the dead one's 10 tips", every=0)
    assert count(api.sessions) == 10 and client.xlen(stream.key) == 0


def test_a_record_the_database_refuses_goes_to_the_dead_letters_and_the_rest_is_written(api, stream, client):
    action = alert(api.launch())
    flood(stream, action, 3)
    stream.append(
        CallOpened(
            "bad",
            None,
            Route(Step.centralist, MatchedBy.caller_id, OpenAlert(999_999, "0000", "x", T0)),
            "x",
            T0,
        )
    )
    client.xadd(stream.key, {"kind": "from-the-future", "call": "?"})
    flood(stream, action, 3, prefix="g")
    TipStreamWriter(stream, api.sessions, "w1").drain()
    assert (
        count(api.sessions, "f%") == 3 and count(api.sessions, "g%") == 3 and count(api.sessions, "bad") == 0
    )
    dead = client.xrange(stream.dead_key)
    assert len(dead) == 2 and all(b"error" in fields for _, fields in dead)


def test_nothing_is_acknowledged_while_the_database_is_away(api, stream, client):
    from gateway.storage.db import make_engine, session_factory

    flood(stream, alert(api.launch()), 5)
    away = session_factory(make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"))
    stop = threading.Event()
    writer = TipStreamWriter(stream, away, "w1")
    thread = threading.Thread(target=writer.run, args=(stop,), kwargs={"block_ms": 50, "retry_seconds": 0.05})
    thread.start()
    until(lambda: pending(client, stream), timeout=10, what="the writer to read the entries", every=0.02)
    stop.set()
    thread.join()
    assert client.xlen(stream.key) == 15
    TipStreamWriter(stream, api.sessions, "w1").drain()  # the database is back
    assert count(api.sessions) == 5


_WRITER_PROCESS = """
import sys, threading
from gateway.storage.db import make_engine, session_factory
from gateway.tipline.tipstream import TipStream, TipStreamWriter
db_url, redis_url, prefix = sys.argv[1:4]
TipStreamWriter(TipStream(redis_url, prefix), session_factory(make_engine(db_url)), "w1", batch=10).run(threading.Event())
"""


def test_a_writer_process_killed_mid_flood_loses_and_doubles_nothing_after_restart(
    api, db_url, stream, client, redis_url, key_prefix
):
    action = alert(api.launch())
    start = lambda: subprocess.Popen([sys.executable, "-c", _WRITER_PROCESS, db_url, redis_url, key_prefix])  # noqa: E731
    writer = start()
    try:
        flood(stream, action, 400)
        # Polled often: the kill must land while the writer is still at work.
        until(lambda: count(api.sessions) >= 20, timeout=120, what="the first 20 tips", every=0.01)
        writer.send_signal(signal.SIGKILL)  # wherever it is: reading, writing, committing, acknowledging
        writer.wait()
        assert 20 <= count(api.sessions) < 400  # killed in the middle of the work
        flood(stream, action, 100, prefix="h")  # calls go on while no writer runs
        writer = start()
        until(lambda: client.xlen(stream.key) == 0, timeout=120, what="the stream to be written", every=0.02)
    finally:
        writer.send_signal(signal.SIGTERM)
        writer.wait()
    assert client.xlen(stream.key) == 0
    assert count(api.sessions, "f%") == 400 and count(api.sessions, "h%") == 100
    with api.sessions() as s:
        done = s.scalar(
            select(func.count(Tip.id)).where(Tip.ended_at.is_not(None), Tip.action_id == action.action_id)
        )
    assert done == 500


# --- the IVR ------------------------------------------------------------------------------------


def test_an_ivr_whose_redis_is_away_writes_the_tip_itself(api):
    api.register("+31612345678")
    api.launch()
    away = "redis://127.0.0.1:1/0"  # nothing listens there
    ctx = IvrContext(api.sessions, RouteCache(away), stream=TipStream(away))
    server = FastAGIServer(("127.0.0.1", 0), registry(ctx))
    server.start_in_background()
    try:
        env = agi_client.env_block(
            "tipline", callerid="0612345678", uniqueid="away.1", agi_arg_1=MELDKAMER, agi_arg_2=""
        )
        got = agi_client.variables(agi_client.call(server.server_address[1], env))
        assert got["BN_DIAL"] == "PJSIP/4021@mk"
        assert row(api.sessions, "away.1")[3] is not None  # in SQL already: no writer involved
    finally:
        server.shutdown()
        server.server_close()
        ctx.close()


def test_a_calls_end_handled_by_another_ivr_server_finishes_the_same_tip(api, redis_url, key_prefix):
    """A pool of IVR servers: the call's `tipline` and `tipline_hangup` sessions reach different
    ones, the hangup within a millisecond of the decision; one stream orders them."""
    api.register("+31612345678")
    opened = api.launch()
    servers, contexts = [], []
    for _ in range(2):
        cache = RouteCache(redis_url, prefix=key_prefix)
        # One secret for the pool (SECRET_KEY in production): the token is checked by the other server.
        ctx = IvrContext(
            api.sessions, cache, stream=TipStream(redis_url, prefix=key_prefix), call_secret=key_prefix
        )
        server = FastAGIServer(("127.0.0.1", 0), registry(ctx))
        server.start_in_background()
        servers.append(server)
        contexts.append(ctx)
    with api.sessions() as s:
        contexts[0].cache.rebuild(s)
    writer = TipStreamWriter(contexts[0].stream, api.sessions, "w1")
    try:
        for n in range(20):
            call = agi_client.env_block(
                "tipline", callerid="0612345678", uniqueid=f"pool.{n}", agi_arg_1=MELDKAMER, agi_arg_2=""
            )
            token = agi_client.variables(agi_client.call(servers[0].server_address[1], call))["BN_CALL_TOKEN"]
            hangup = agi_client.env_block(
                "tipline_hangup",
                uniqueid=f"pool.{n}",
                agi_arg_1="ANSWER",
                agi_arg_2="30",
                agi_arg_3="PJSIP/4021@mk",
                agi_arg_4="",
                agi_arg_5="",
                agi_arg_6=token,
            )
            agi_client.call(servers[1].server_address[1], hangup)
        writer.drain()
    finally:
        writer.close()
        for server, ctx in zip(servers, contexts):
            server.shutdown()
            server.server_close()
            ctx.close()
    with api.sessions() as s:
        tips = s.scalars(select(Tip).where(Tip.call_id.like("pool.%"))).all()
    assert len(tips) == 20
    assert {(t.action_id, t.matched_by, t.dial_status, t.talk_seconds) for t in tips} == {
        (opened["id"], MatchedBy.caller_id, "ANSWER", 30)
    }


def test_the_tip_writer_command_needs_redis_and_answers_its_health_check(monkeypatch, redis_url):
    from typer.testing import CliRunner

    from gateway.cli import app
    from gateway.config import get_settings

    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("REDIS_URL", "")
    get_settings.cache_clear()
    never_ran = f"nobody-{time.time_ns()}"
    try:
        result = CliRunner().invoke(app, ["tip-writer"])
        assert result.exit_code == 2 and "REDIS_URL" in result.output
        monkeypatch.setenv("REDIS_URL", redis_url)
        get_settings.cache_clear()
        result = CliRunner().invoke(app, ["tip-writer", "--consumer", never_ran, "--check"])
        assert result.exit_code == 1 and "not seen lately" in result.output
        TipStreamWriter(TipStream(redis_url), None, never_ran).heartbeat()  # what a running writer does
        result = CliRunner().invoke(app, ["tip-writer", "--consumer", never_ran, "--check"])
        assert result.exit_code == 0 and "alive" in result.output
    finally:
        redis.Redis.from_url(redis_url).delete(f"burgernet:tips:writer:{never_ran}")
        get_settings.cache_clear()


def test_a_connection_redis_dropped_is_replaced_on_the_spot(redis_url, client):
    """The tip line's Redis connections come from redis-py's pool: one that Redis dropped (a
    restart, a timeout) costs the next call nothing but a reconnect."""
    from gateway.tipline.lookup import RouteCache

    cache = RouteCache(redis_url, prefix=f"test-drop-{uuid.uuid4().hex}:")
    try:
        assert cache.is_complete() is False  # a round trip: one connection now idle in the pool
        [idle] = cache.redis.connection_pool._available_connections
        client.client_kill("{}:{}".format(*idle._sock.getsockname()))  # as a Redis restart would
        cache.mark_complete()
        assert cache.is_complete() is True
    finally:
        cache.close()
