"""Prometheus metrics (gateway/metrics.py): the collectors over real PostgreSQL/SQLite and Redis,
the endpoint's token, and real `burgernet` processes serving /metrics, logging JSON and stopping
cleanly on SIGTERM."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest
import redis
import redis.asyncio
from polling import until
from prometheus_client import CollectorRegistry
from sqlalchemy import update

from gateway.metrics import (
    BindCollector,
    DatabaseCollector,
    MetricsEndpoint,
    QueueCollector,
    TipStreamCollector,
    metrics_app,
)
from gateway.queue import RedisStreamQueue
from gateway.sms.health import BindHealth
from gateway.sms.ratelimit import BindRateLimit
from gateway.storage.models import Message, MessageStatus
from gateway.tipline.tipstream import stream_key


def registry_of(*collectors) -> CollectorRegistry:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    return registry


def test_messages_by_channel_and_status_and_calls_in_progress(api):
    api.register("+31612345001", "+31612345002", "+31612345003")
    api.register("+31612345004", "+31612345005", channel="voice")
    action = api.launch(channels=("sms", "voice"))
    with api.sessions() as s:  # one alert call dialled and not over yet
        s.execute(
            update(Message)
            .where(Message.action_id == action["id"], Message.phone == "+31612345004")
            .values(status=MessageStatus.sending, dispatched_at=datetime.now(UTC))
        )
        s.commit()

    registry = registry_of(DatabaseCollector(api.sessions))
    value = registry.get_sample_value
    assert value("burgernet_messages", {"channel": "sms", "status": "queued"}) == 3
    assert value("burgernet_messages", {"channel": "voice", "status": "queued"}) == 1
    assert value("burgernet_messages", {"channel": "voice", "status": "sending"}) == 1
    assert value("burgernet_messages", {"channel": "sms", "status": "delivered"}) == 0
    assert value("burgernet_calls_in_progress", {"kind": "alert"}) == 1
    assert value("burgernet_calls_in_progress", {"kind": "tip"}) == 0


def test_database_figures_are_cached_between_scrapes(api):
    api.register("+31612345001")
    api.launch()
    registry = registry_of(DatabaseCollector(api.sessions))
    assert registry.get_sample_value("burgernet_messages", {"channel": "sms", "status": "queued"}) == 1
    api.register("+31612345002")
    api.launch("Tweede actie.")
    # Within CACHE_SECONDS a second scrape answers from the first one's query.
    assert registry.get_sample_value("burgernet_messages", {"channel": "sms", "status": "queued"}) == 1
    fresh = registry_of(DatabaseCollector(api.sessions))
    assert fresh.get_sample_value("burgernet_messages", {"channel": "sms", "status": "queued"}) == 3


def test_queue_backlog_per_channel(redis_url, key_prefix):
    queue = RedisStreamQueue(redis_url, prefix=key_prefix)
    try:
        queue.publish("sms", list(range(1, 26)), flow=7)  # 10 ids an entry: 3 entries
        queue.publish("voice", [1, 2], flow=7)
        queue.publish("voice", [3], flow=8)
        registry = registry_of(QueueCollector(queue))
        value = registry.get_sample_value
        assert value("burgernet_queue_backlog", {"channel": "sms"}) == 3
        assert value("burgernet_queue_backlog", {"channel": "voice"}) == 3
        assert value("burgernet_queue_flows", {"channel": "voice"}) == 2
        taken = queue.consume("voice", "w1", count=3, block_ms=0)
        queue.ack("voice", [d.entry_id for d in taken])
        assert value("burgernet_queue_backlog", {"channel": "voice"}) == 0
    finally:
        queue.close()


def test_bind_state_and_its_sends_in_the_last_second(redis_url, key_prefix):
    client = redis.Redis.from_url(redis_url)
    health = BindHealth(client, key_prefix)
    health.set("kpn-1", "bound", "bound as transceiver")
    health.set("kpn-2", "auth_failed", "ESME_RINVPASWD")
    health.note_set_aside("duplicate key")
    health.publish()

    async def take_twice():
        aclient = redis.asyncio.Redis.from_url(redis_url)
        try:
            limit = BindRateLimit(aclient, "kpn-1", 200, prefix=key_prefix)
            return await limit.take(10) + await limit.take(10)  # batches of 10 at 200/s
        finally:
            await aclient.aclose()

    sent = asyncio.run(take_twice())
    registry = registry_of(BindCollector(client, key_prefix))
    value = registry.get_sample_value
    assert value("burgernet_sms_bind_state", {"bind": "kpn-1", "state": "bound"}) == 1
    assert value("burgernet_sms_bind_state", {"bind": "kpn-1", "state": "unbound"}) == 0
    assert value("burgernet_sms_bind_state", {"bind": "kpn-2", "state": "auth_failed"}) == 1
    assert value("burgernet_sms_bind_sends_last_second", {"bind": "kpn-1"}) == sent == 20
    assert value("burgernet_sms_bind_sends_last_second", {"bind": "kpn-2"}) == 0
    assert value("burgernet_sms_rows_set_aside", {"bind": "kpn-2"}) == 1
    time.sleep(1.1)  # the window has passed: nothing sent in the last second
    assert value("burgernet_sms_bind_sends_last_second", {"bind": "kpn-1"}) == 0
    client.close()


def test_tip_writer_lag_is_the_age_of_the_oldest_record_not_written(redis_url, key_prefix):
    client = redis.Redis.from_url(redis_url)
    registry = registry_of(TipStreamCollector(client, key_prefix))
    assert registry.get_sample_value("burgernet_tip_writer_lag_seconds") == 0
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros // 1000
    key = stream_key(key_prefix)
    client.xadd(key, {"kind": "ended", "call": "c1"}, id=f"{now_ms - 3000}-0")  # appended 3 s ago
    client.xadd(key, {"kind": "ended", "call": "c2"})
    lag = registry.get_sample_value("burgernet_tip_writer_lag_seconds")
    assert 3.0 <= lag < 5.0
    assert registry.get_sample_value("burgernet_tip_stream_length") == 2
    client.close()


def _get(url: str, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_endpoint_wants_the_token_for_metrics_not_for_livez():
    registry = CollectorRegistry()
    endpoint = MetricsEndpoint("127.0.0.1", 0, metrics_app(registry, token="s3cret"))
    base = f"http://127.0.0.1:{endpoint.port}"
    try:
        assert _get(f"{base}/metrics")[0] == 401
        assert _get(f"{base}/metrics", {"Authorization": "Bearer wrong"})[0] == 401
        assert _get(f"{base}/metrics", {"Authorization": "Bearer s3cret"})[0] == 200
        assert _get(f"{base}/livez") == (200, "ok\n")
        assert _get(f"{base}/other")[0] == 404
    finally:
        endpoint.close()


# --- real processes -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(url: str, process: subprocess.Popen, timeout: float = 20) -> None:
    def answers() -> bool:
        if process.poll() is not None:
            pytest.fail(f"process ended ({process.returncode}): {process.stderr.read()[-2000:]}")
        try:
            return _get(url)[0] == 200
        except OSError:
            return False

    until(answers, timeout, f"{url} to answer", every=0.1)


def _stop(process: subprocess.Popen, timeout: float = 20) -> str:
    """SIGTERM; the process must exit 0 by itself. Returns its stderr."""
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"no exit {timeout} s after SIGTERM")
    assert process.returncode == 0, err[-2000:]
    return err


@pytest.fixture
def process_env(pg_url, redis_url, key_prefix):
    return {
        "ENVIRONMENT": "test",
        "SECRET_KEY": "metrics-test-secret",
        "DATABASE_URL": pg_url.replace("postgresql+psycopg://", "postgresql://"),
        "REDIS_URL": redis_url,
        "METRICS_HOST": "127.0.0.1",
        "LOG_FORMAT": "json",
    }


def test_api_serves_liveness_readiness_and_its_metrics_then_stops_on_sigterm(process_env):
    api_port, metrics_port = _free_port(), _free_port()
    env = {**process_env, "METRICS_PORT": str(metrics_port), "HOUSEKEEPING_IN_API": "false"}
    process = _start(["serve", "--port", str(api_port)], env)
    try:
        _wait_for(f"http://127.0.0.1:{api_port}/livez", process)
        status, body = _get(f"http://127.0.0.1:{api_port}/readyz")
        assert status == 200
        assert json.loads(body)["checks"] == {"database": "ok", "redis": "ok"}
        assert _get(f"http://127.0.0.1:{api_port}/metrics")[0] == 404  # not on the public port
        status, text = _get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200
        assert 'burgernet_process_info{role="api"} 1.0' in text
        assert 'burgernet_messages{channel="sms",status="queued"}' in text
        assert 'burgernet_queue_backlog{channel="voice"}' in text
        assert "burgernet_tip_writer_lag_seconds" in text
    finally:
        err = _stop(process)
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "no log lines"
    for line in lines:  # LOG_FORMAT=json: every line, uvicorn's own included, is one object
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= entry.keys()
    assert any(json.loads(line)["logger"].startswith("uvicorn") for line in lines)


def test_readyz_says_unavailable_without_the_database(process_env):
    api_port = _free_port()
    env = {
        **process_env,
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "HOUSEKEEPING_IN_API": "false",
    }
    process = _start(["serve", "--port", str(api_port)], env)
    try:
        _wait_for(f"http://127.0.0.1:{api_port}/livez", process)  # alive all the same
        status, body = _get(f"http://127.0.0.1:{api_port}/readyz")
        assert status == 503
        assert json.loads(body)["checks"]["database"].startswith("failed: ")
    finally:
        _stop(process)


@pytest.mark.parametrize(
    ("role", "metric"),
    [("tip-writer", "burgernet_tip_writer_lag_seconds"), ("ivr", "burgernet_calls_in_progress")],
)
def test_each_process_serves_its_own_endpoint_and_stops_on_sigterm(process_env, role, metric):
    port = _free_port()
    args = (
        ["tip-writer", "--consumer", "metrics-test"]
        if role == "tip-writer"
        else ["ivr", "--port", str(_free_port())]
    )
    process = _start([*args, "--metrics-port", str(port)], process_env)
    try:
        _wait_for(f"http://127.0.0.1:{port}/livez", process)
        status, text = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        assert f'burgernet_process_info{{role="{role}"}} 1.0' in text
        assert metric in text
    finally:
        _stop(process)
