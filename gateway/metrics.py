"""Prometheus metrics: every metric the gateway exports, and the endpoint each process serves them on.

Each long-running process (`burgernet serve`, `worker sms`, `worker voice`, `ivr`, `tip-writer`,
`housekeeping`) serves its own endpoint on METRICS_HOST:METRICS_PORT (off while the port is 0),
never on the API's public port: `/metrics` in Prometheus' text format and `/livez` for health
checks. METRICS_HOST is loopback by default — in compose the container's address on the internal
network, not published; with METRICS_TOKEN set, /metrics also wants `Authorization: Bearer <token>`.

Most figures are read, at scrape time, from state the gateway already keeps — the database, the
work queue's streams, the bind states the SMS workers report (gateway/sms/health.py), the bind
rate log (gateway/sms/ratelimit.py) and the tip stream — by the collectors below, which each
process registers for what it is responsible for. What can only be counted where it happens
(the time a tip call took to route, a bind's window in use, calls held by this process) is a
plain metric here that the code doing it updates.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import redis
from prometheus_client import REGISTRY, CollectorRegistry, Gauge, Histogram, Info, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.queue.base import DEFAULT_PREFIX
from gateway.sms.health import read_bind_health
from gateway.storage.models import Action, ActionStatus, Channel, Message, MessageStatus, Tip, TipChannel

log = logging.getLogger(__name__)

CHANNELS = ("sms", "voice")
# Messages are counted for the actions still at work: open, or closed less than this long ago
# (closing messages and receipts still coming). Older ones are the statistics' business.
RECENT_CLOSE = timedelta(hours=24)
# A tip call without an end this long after it arrived lost its end record: not in progress.
CALL_IN_PROGRESS_LIMIT = timedelta(hours=2)
# Collectors that query the database answer from a cache younger than this: several Prometheus
# servers, or a short scrape interval, do not multiply the queries.
CACHE_SECONDS = 10.0

# --- what the code doing it updates (see the report's hooks) -------------------------------------

TIP_ROUTING_SECONDS = Histogram(
    "burgernet_tip_routing_seconds",
    "A tip call from the IVR's first AGI command to the routing decision (caller ID, menu or code)",
    ["matched_by"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SMS_WINDOW_IN_USE = Gauge(
    "burgernet_sms_window_in_use",
    "Submits outstanding (sent, not yet answered) on a bind in this worker",
    ["bind"],
)
ROLE = Info("burgernet_process", "Which gateway process this is")
CALLS_HELD = Gauge(
    "burgernet_calls_held",
    "Calls this process holds now: alert calls of a voice worker, tip calls of an IVR",
    ["kind"],
)


# --- collectors over the state the gateway keeps ----------------------------------------------------


class _Cached:
    """A function's result, computed again once older than `seconds`."""

    def __init__(self, compute: Callable[[], Any], seconds: float = CACHE_SECONDS) -> None:
        self.compute, self.seconds = compute, seconds
        self._value: Any = None
        self._at = -float("inf")
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            if time.monotonic() - self._at >= self.seconds:
                self._value = self.compute()
                self._at = time.monotonic()
            return self._value


def _working_actions(now: datetime):
    """The ids of the actions still at work (a subquery): open, or closed recently."""
    return select(Action.id).where(
        or_(Action.status == ActionStatus.open, Action.closed_at > now - RECENT_CLOSE)
    )


def count_messages(session: Session, now: datetime) -> dict[tuple[str, str], int]:
    """Messages of the working actions by (channel, status); every pair present, 0 when none."""
    rows = session.execute(
        select(Message.channel, Message.status, func.count())
        .where(Message.action_id.in_(_working_actions(now)))
        .group_by(Message.channel, Message.status)
    )
    counts = {(c.value, s.value): 0 for c in Channel for s in MessageStatus}
    for channel, status, count in rows:
        counts[(Channel(channel).value, MessageStatus(status).value)] = count
    return counts


def count_calls_in_progress(session: Session, now: datetime) -> dict[str, int]:
    """Alert calls dialled and not yet over, tip calls arrived and not yet ended (as recorded)."""
    alerts = session.scalar(
        select(func.count()).where(
            Message.action_id.in_(_working_actions(now)),
            Message.channel == Channel.voice,
            Message.status == MessageStatus.sending,
            Message.dispatched_at.is_not(None),
        )
    )
    tips = session.scalar(
        select(func.count()).where(
            Tip.channel == TipChannel.call,
            Tip.ended_at.is_(None),
            Tip.received_at > now - CALL_IN_PROGRESS_LIMIT,
        )
    )
    return {"alert": alerts or 0, "tip": tips or 0}


class DatabaseCollector(Collector):
    """Messages by channel and status, and calls in progress, from SQL (cached)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._read = _Cached(lambda: self._query(sessions))

    @staticmethod
    def _query(sessions: sessionmaker[Session]) -> tuple[dict, dict]:
        now = datetime.now(UTC)
        with sessions() as session:
            return count_messages(session, now), count_calls_in_progress(session, now)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            messages, calls = self._read()
        except Exception:  # the database away: the scrape still answers, without these
            log.warning("metrics: the database could not be read", exc_info=True)
            return
        family = GaugeMetricFamily(
            "burgernet_messages",
            "Messages of the actions at work (open, or closed in the last 24 h) by channel and status",
            labels=["channel", "status"],
        )
        for (channel, status), count in sorted(messages.items()):
            family.add_metric([channel, status], count)
        yield family
        calls_family = GaugeMetricFamily(
            "burgernet_calls_in_progress",
            "Calls in progress as recorded: alert calls dialled and not over; tip calls not ended",
            labels=["kind"],
        )
        for kind, count in sorted(calls.items()):
            calls_family.add_metric([kind], count)
        yield calls_family


class QueueCollector(Collector):
    """The work queue's backlog per channel (entries not acked yet) and the flows waiting."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        backlog = GaugeMetricFamily(
            "burgernet_queue_backlog",
            "Work-queue entries not acknowledged yet, by channel (an SMS entry carries up to 10 ids)",
            labels=["channel"],
        )
        flows = GaugeMetricFamily(
            "burgernet_queue_flows", "Bulletins with entries waiting, by channel", labels=["channel"]
        )
        try:
            for channel in CHANNELS:
                waiting = self.queue.waiting(channel)
                backlog.add_metric([channel], sum(waiting.values()))
                flows.add_metric([channel], len(waiting))
        except redis.RedisError:
            log.warning("metrics: the queue could not be read", exc_info=True)
            return
        yield backlog
        yield flows


BIND_STATES = ("bound", "unbound", "auth_failed", "bind_refused", "stopped")


def rate_log_sends(
    client: redis.Redis, prefix: str, bind: str, now_us: int, window_us: int = 1_000_000
) -> int:
    """Sends granted on `bind` in the last `window_us` (the shared rate log of gateway.sms.ratelimit)."""
    members: list[bytes | str] = client.zrangebyscore(  # type: ignore[assignment]
        f"{prefix}smpp-rate:{bind}:log", now_us - window_us, "+inf"
    )
    return sum(int(_text(m).rsplit(":", 1)[1]) for m in members)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class BindCollector(Collector):
    """Each bind as the SMS workers report it (state, rows set aside) and its sends in the last
    second from the shared rate log. A bind no worker reports has no series."""

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self.client, self.prefix = client, prefix

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = GaugeMetricFamily(
            "burgernet_sms_bind_state",
            "1 for the state a bind is in (as its worker reports it)",
            labels=["bind", "state"],
        )
        rate = GaugeMetricFamily(
            "burgernet_sms_bind_sends_last_second",
            "Sends granted on the bind in the last second, every worker together (its rate in use)",
            labels=["bind"],
        )
        set_aside = GaugeMetricFamily(
            "burgernet_sms_rows_set_aside",
            "Rows the database refused, set aside by the bind's worker",
            labels=["bind"],
        )
        try:
            binds = read_bind_health(self.client, self.prefix)
            seconds, micros = self.client.time()
            now_us = int(seconds) * 1_000_000 + int(micros)
            for bind, value in sorted(binds.items()):
                current = str(value.get("state"))
                for name in sorted({*BIND_STATES, current}):
                    state.add_metric([bind, name], 1 if name == current else 0)
                rate.add_metric([bind], rate_log_sends(self.client, self.prefix, bind, now_us))
                set_aside.add_metric([bind], int(value.get("rows_set_aside") or 0))  # type: ignore[call-overload]
        except redis.RedisError:
            log.warning("metrics: the bind states could not be read", exc_info=True)
            return
        yield state
        yield rate
        yield set_aside


def tip_stream_lag(client: redis.Redis, key: str, now_ms: int) -> tuple[int, float]:
    """(records waiting, age in seconds of the oldest) of the tip stream: its entries are deleted
    once written, so whatever is in it has not reached the database yet."""
    length = int(client.xlen(key))
    if not length:
        return 0, 0.0
    first: list[tuple[bytes | str, Any]] = client.xrange(key, count=1)  # type: ignore[assignment]
    millis = int(_text(first[0][0]).split("-", 1)[0]) if first else now_ms
    return length, max(0.0, (now_ms - millis) / 1000)


class TipStreamCollector(Collector):
    """The tip writer's lag: records the IVR appended that are not in the database yet."""

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        from gateway.tipline.tipstream import stream_key

        self.client, self.key = client, stream_key(prefix)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            seconds, micros = self.client.time()
            length, lag = tip_stream_lag(self.client, self.key, int(seconds) * 1000 + int(micros) // 1000)
            dead = int(self.client.xlen(f"{self.key}:dead"))
        except redis.RedisError:
            log.warning("metrics: the tip stream could not be read", exc_info=True)
            return
        yield GaugeMetricFamily(
            "burgernet_tip_writer_lag_seconds",
            "Age of the oldest tip record not yet written to the database (0: none waiting)",
            value=lag,
        )
        yield GaugeMetricFamily("burgernet_tip_stream_length", "Tip records not yet written", value=length)
        yield GaugeMetricFamily(
            "burgernet_tip_dead_letters", "Tip records the writer could not store (kept aside)", value=dead
        )


# --- the endpoint -------------------------------------------------------------------------------------


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # a scrape every 15 s is no news
        pass


def metrics_app(registry: CollectorRegistry = REGISTRY, token: str = "") -> Callable:
    """The WSGI app of the endpoint: /metrics (with the bearer `token` when one is set), /livez."""
    metrics = make_wsgi_app(registry)
    expected = f"Bearer {token}".encode()

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/livez":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: /metrics or /livez\n"]
        given = environ.get("HTTP_AUTHORIZATION", "").encode()
        if token and not hmac.compare_digest(given, expected):
            start_response(
                "401 Unauthorized", [("WWW-Authenticate", "Bearer"), ("Content-Type", "text/plain")]
            )
            return [b"metrics need Authorization: Bearer <METRICS_TOKEN>\n"]
        return metrics(environ, start_response)

    return app


class MetricsEndpoint:
    """The process's endpoint, served from a daemon thread until `close()`."""

    def __init__(self, host: str, port: int, app: Callable) -> None:
        self.server = make_server(host, port, app, server_class=_Server, handler_class=_QuietHandler)
        self.port = self.server.server_port
        self._thread = threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_metrics(
    settings: Any, role: str, collectors: Iterable[Collector] = (), port: int | None = None
) -> MetricsEndpoint | None:
    """Register `collectors` and serve this process's endpoint on METRICS_HOST:METRICS_PORT (or
    `port`); None when the port is 0 (no endpoint)."""
    port = settings.metrics_port if port is None else port
    if not port:
        return None
    for collector in collectors:
        REGISTRY.register(collector)
    ROLE.info({"role": role})
    endpoint = MetricsEndpoint(settings.metrics_host, port, metrics_app(REGISTRY, settings.metrics_token))
    log.info("metrics of %s on http://%s:%d/metrics", role, settings.metrics_host, endpoint.port)
    return endpoint


def redis_client(url: str) -> redis.Redis:
    """A client for the collectors: short timeouts, so that a scrape never hangs on Redis."""
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def collectors_for(
    role: str,
    settings: Any,
    sessions: sessionmaker[Session] | None = None,
    queue: Any = None,
) -> list[Collector]:
    """What each process reports besides its own metrics: the API the whole picture (messages,
    calls, queue, binds, tip stream), each other process its own part of it."""
    found: list[Collector] = []
    if sessions is not None and role in ("api", "voice-worker", "ivr"):
        found.append(DatabaseCollector(sessions))
    if queue is not None and role in ("api", "sms-worker", "voice-worker"):
        found.append(QueueCollector(queue))
    if settings.redis_url:
        client = redis_client(settings.redis_url)
        if role in ("api", "sms-worker"):
            found.append(BindCollector(client))
        if role in ("api", "tip-writer", "ivr"):
            found.append(TipStreamCollector(client))
    return found
