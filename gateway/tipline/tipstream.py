"""The tip log's way to SQL with Redis: a stream of tip records, and the writer that empties it.

The IVR appends one record per event of a call — it arrived (in the same Lua round trip as the
route lookup: `TipStream.arrive`), it was routed after a menu or code prompt, it ended — and goes
on at once; the `burgernet tip-writer` process reads the stream through a consumer group, applies
each batch to SQL in one transaction and acknowledges (and deletes) the entries only after the
commit. A writer killed in between leaves its entries pending: it takes them up again when it
restarts under the same consumer name, any other writer after `CLAIM_IDLE_MS`; `record_calls`
makes a record applied twice, or out of order, harmless. So a call is in the tip log as soon as
it is in Redis — before the caller is put through — whatever happens to the IVR or the writer
afterwards. All IVR processes append to the one stream, so a call's end can never overtake its
opening on the way to SQL, even when its two AGI sessions reached different IVR servers.

Records are flat string fields (no pickles: both ends may run different versions):
  arrived  call, caller, at, meldkamer, complete, open, a:<action id> = packed alert for each
           alert the route cache holds for the caller. When `complete` is 1 the route follows
           from it by routing.route_by_caller, the same pure function the IVR decided with.
  opened   call, caller, at, step, matched, to, a:<action id> (the route's alert, if any)
  ended    call, at, status, talk, to, recording
Records the writer cannot decode or the database refuses go to a dead-letter stream
(`…tips:dead`, with the reason), so one bad record neither blocks the others nor is lost.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import redis
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gateway.config import Settings
from gateway.queue.streams import with_group
from gateway.storage.models import MatchedBy
from gateway.tipline.lookup import RouteCache, pack_alert, unpack_alert, unpack_codes
from gateway.tipline.routing import OpenAlert, Route, Step, dial_for, route_by_caller
from gateway.tipline.tips import CallEnded, CallOpened, TipRecord, record_calls

log = logging.getLogger(__name__)

GROUP = "tip-writers"
CLAIM_IDLE_MS = 30_000  # a writer that held entries this long without acknowledging them is gone
HEARTBEAT_SECONDS = 5
LINGER_MS = 50  # after a batch that was not full: how long records may gather before the next
# Errors after which the database may work again: retry the batch, acknowledge nothing.
_DATABASE_AWAY = (OperationalError, InterfaceError)
# The route of an arrival whose lookup the cache could not answer: decided by a later record.
_UNDECIDED = Route(Step.ask_code)

# The caller's alerts from the route cache (or, when it has none, the open actions by code) and
# the call's arrival record, in one round trip.
_ARRIVE = """
local complete = redis.call('EXISTS', KEYS[1])
local open, alerts, codes = 0, {}, {}
if complete == 1 then
  alerts = redis.call('HGETALL', KEYS[3])
  if #alerts == 0 then codes = redis.call('HGETALL', KEYS[2]) end  -- to be asked for a code
  if #alerts > 0 or #codes > 0 then open = 1 end
end
local record = {'kind', 'arrived', 'complete', tostring(complete), 'open', tostring(open)}
for i = 1, #ARGV do record[#record + 1] = ARGV[i] end
for i = 1, #alerts, 2 do
  record[#record + 1] = 'a:' .. alerts[i]
  record[#record + 1] = alerts[i + 1]
end
redis.call('XADD', KEYS[4], '*', unpack(record))
return {complete, open, alerts, codes}
"""


def stream_key(prefix: str) -> str:
    return f"{prefix}tips"


@dataclass(frozen=True, slots=True)
class Arrival:
    """What the route cache said about a caller when the call's arrival was logged."""

    complete: bool  # False: the cache could not say (rebuilding); the alerts are not the answer
    any_open: bool
    alerts: list[OpenAlert]
    codes: dict[str, OpenAlert]  # the open actions by code, when the caller has no alerts


class TipStream:
    """The IVR's end: append tip records (XADD). Raises redis.RedisError when Redis is away."""

    def __init__(self, url: str, prefix: str = "burgernet:"):
        self.url, self.prefix = url, prefix
        self.key, self.dead_key = stream_key(prefix), f"{stream_key(prefix)}:dead"
        self._redis = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._arrive_sha = hashlib.sha1(_ARRIVE.encode()).hexdigest()

    def arrive(
        self, cache: RouteCache, call_id: str, caller: str | None, received_at: datetime, meldkamer: str
    ) -> Arrival:
        """Log that a call arrived together with what the route cache holds for its caller (one
        Lua script: nothing can change in between), and return that. `cache` must use the
        same Redis."""
        keys = (*cache.lookup_keys(caller), self.key)
        args = (
            "call",
            call_id,
            "caller",
            caller or "",
            "at",
            received_at.isoformat(),
            "meldkamer",
            meldkamer,
        )
        try:
            complete, any_open, flat, codes = self._redis.execute_command(
                "EVALSHA", self._arrive_sha, len(keys), *keys, *args
            )
        except redis.exceptions.NoScriptError:  # Redis restarted since: load the script once more
            self._redis.execute_command("SCRIPT", "LOAD", _ARRIVE)
            complete, any_open, flat, codes = self._redis.execute_command(
                "EVALSHA", self._arrive_sha, len(keys), *keys, *args
            )
        alerts = [unpack_alert(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
        return Arrival(bool(complete), bool(any_open), alerts, unpack_codes(codes[1::2]))

    def append(self, record: TipRecord) -> None:
        self._redis.execute_command(
            "XADD", self.key, "*", *itertools.chain.from_iterable(encode(record).items())
        )

    def close(self) -> None:
        self._redis.close()


# --- records ------------------------------------------------------------------------------------


def encode(record: TipRecord) -> dict[str, str]:
    if isinstance(record, CallOpened):
        fields = {
            "kind": "opened",
            "call": record.call_id,
            "caller": record.caller or "",
            "at": record.received_at.isoformat(),
            "step": record.route.step.value,
            "matched": record.route.matched_by.value,
            "to": record.routed_to or "",
        }
        if (alert := record.route.alert) is not None:
            fields[f"a:{alert.action_id}"] = pack_alert(alert)
        return fields
    return {
        "kind": "ended",
        "call": record.call_id,
        "at": record.ended_at.isoformat(),
        "status": record.dial_status or "",
        "talk": "" if record.talk_seconds is None else str(record.talk_seconds),
        "to": record.routed_to or "",
        "recording": record.recording_path or "",
    }


def decode(raw: dict[bytes, bytes] | dict[str, str]) -> TipRecord:
    """A stream entry's record; KeyError or ValueError when it is not one."""
    f = {_text(k): _text(v) for k, v in raw.items()}
    kind, call_id, at = f["kind"], f["call"], datetime.fromisoformat(f["at"])
    alerts = [unpack_alert(k[2:], v) for k, v in f.items() if k.startswith("a:")]
    if kind == "arrived":
        caller = f["caller"] or None
        if f["complete"] != "1":
            return CallOpened(call_id, caller, _UNDECIDED, None, at)
        route = route_by_caller(caller, alerts, any_open=f["open"] == "1")
        return CallOpened(call_id, caller, route, dial_for(route, f["meldkamer"]), at)
    if kind == "opened":
        route = Route(Step(f["step"]), MatchedBy(f["matched"]), alerts[0] if alerts else None)
        return CallOpened(call_id, f["caller"] or None, route, f["to"] or None, at)
    if kind == "ended":
        talk = f["talk"]
        return CallEnded(
            call_id,
            at,
            dial_status=f["status"] or None,
            talk_seconds=int(talk) if talk else None,
            routed_to=f["to"] or None,
            recording_path=f["recording"] or None,
        )
    raise ValueError(f"unknown tip record kind {kind!r}")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# --- the writer (`burgernet tip-writer`) ------------------------------------------------------------


class TipStreamWriter:
    """Moves tip records from the stream to SQL: one transaction per batch, acknowledged after it."""

    def __init__(
        self,
        stream: TipStream,
        sessions: sessionmaker[Session],
        consumer: str,
        *,
        batch: int = 500,
        claim_idle_ms: int = CLAIM_IDLE_MS,
        linger_ms: int = LINGER_MS,
    ):
        self.stream, self.sessions, self.consumer = stream, sessions, consumer
        self.batch, self.claim_idle_ms, self.linger_ms = batch, claim_idle_ms, linger_ms
        # Its own connection: blocking reads outlast the IVR's half-second timeout.
        self.redis = redis.Redis.from_url(
            stream.url, socket_timeout=30, socket_connect_timeout=5, decode_responses=True
        )
        self._mine_first = True  # entries this consumer read but never acknowledged come first
        self._claim_from = "0-0"
        self._claimed_at = -float("inf")
        self._beat_at = 0.0

    def run(self, stop: threading.Event, block_ms: int = 1000, retry_seconds: float = 2.0) -> None:
        """Write until `stop` is set; Redis or the database away: wait and try again."""
        while not stop.is_set():
            try:
                self.heartbeat()
                if 0 < self.run_once(block_ms) < self.batch:
                    # Let records gather: a busy tip line gets big batches (a commit per call
                    # would cost the writer, and the database, many times the CPU).
                    stop.wait(self.linger_ms / 1000)
            except (redis.RedisError, *_DATABASE_AWAY) as exc:
                log.warning(
                    "tip writer %s: %s; retrying in %.0f s", self.consumer, type(exc).__name__, retry_seconds
                )
                stop.wait(retry_seconds)

    def run_once(self, block_ms: int | None = 1000) -> int:
        """Write one batch (waiting up to `block_ms` for it; None: not at all); returns its size."""
        entries = self._next(block_ms)
        if entries:
            self._mine_first = True  # if writing fails, these stay pending for this consumer
            self._write(entries)
            with self.redis.pipeline(transaction=True) as tx:
                ids = [entry_id for entry_id, _ in entries]
                tx.xack(self.stream.key, GROUP, *ids)
                tx.xdel(self.stream.key, *ids)
                tx.execute()
            self._mine_first = False
        return len(entries)

    def drain(self, timeout: float = 30.0) -> None:
        """Write until the stream is empty (tests, benchmarks); TimeoutError after `timeout` s."""
        deadline = time.monotonic() + timeout
        while self.redis.xlen(self.stream.key):
            if time.monotonic() > deadline:
                raise TimeoutError(f"tip stream not empty after {timeout} s")
            self.run_once(block_ms=100)

    def heartbeat(self) -> None:
        """Say this writer is alive (for health checks), every few seconds."""
        if time.monotonic() - self._beat_at >= HEARTBEAT_SECONDS:
            self.redis.set(
                _heartbeat_key(self.stream.key, self.consumer), int(time.time()), ex=6 * HEARTBEAT_SECONDS
            )
            self._beat_at = time.monotonic()

    def _next(self, block_ms: int | None) -> list[tuple[str, dict]]:
        key = self.stream.key
        if self._mine_first:  # after a restart or a failed batch
            entries = self._grouped(
                lambda: self.redis.xreadgroup(GROUP, self.consumer, {key: "0"}, count=self.batch)
            )
            if entries:
                return entries
            self._mine_first = False
        # What dead writers left: looked for every tenth of the idle time, not every batch.
        if time.monotonic() - self._claimed_at >= self.claim_idle_ms / 10_000:
            self._claim_from, claimed, *_ = self._grouped_raw(
                lambda: self.redis.xautoclaim(
                    key, GROUP, self.consumer, self.claim_idle_ms, self._claim_from, count=self.batch
                )
            )
            if claimed:
                log.info(
                    "tip writer %s: took over %d records another writer left", self.consumer, len(claimed)
                )
                return claimed
            self._claimed_at = time.monotonic()
        return self._grouped(
            lambda: self.redis.xreadgroup(GROUP, self.consumer, {key: ">"}, count=self.batch, block=block_ms)
        )

    def _grouped(self, read) -> list[tuple[str, dict]]:
        reply = self._grouped_raw(read)
        return [entry for _stream, entries in reply or () for entry in entries]

    def _grouped_raw(self, call):
        return with_group(self.redis, self.stream.key, GROUP, call)

    def _write(self, entries: Sequence[tuple[str, dict]]) -> None:
        records, refused = [], []
        for _entry_id, fields in entries:
            if not fields:  # deleted while pending: nothing left to write
                continue
            try:
                records.append((fields, decode(fields)))
            except (KeyError, ValueError) as exc:
                refused.append((fields, f"not a tip record: {exc!r}"))
        try:
            self._commit([record for _, record in records])
        except _DATABASE_AWAY:
            raise
        except SQLAlchemyError:
            log.exception(
                "tip writer %s: a batch of %d was refused; writing one by one", self.consumer, len(records)
            )
            for fields, record in records:
                try:
                    self._commit([record])
                except _DATABASE_AWAY:
                    raise
                except SQLAlchemyError as exc:
                    refused.append((fields, f"refused by the database: {type(exc).__name__}: {exc}"[:500]))
        for fields, why in refused:
            log.error("tip writer %s: record moved to %s: %s", self.consumer, self.stream.dead_key, why)
            self.redis.xadd(self.stream.dead_key, {**fields, "error": why})

    def _commit(self, records: list[TipRecord]) -> None:
        with self.sessions() as session, session.begin():
            record_calls(session, records)

    def close(self) -> None:
        self.redis.close()


def _heartbeat_key(stream_key: str, consumer: str) -> str:
    return f"{stream_key}:writer:{consumer}"


def writer_alive(url: str, consumer: str, prefix: str = "burgernet:") -> bool:
    """Whether the writer `consumer` beat in the last half minute (its health check)."""
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return bool(client.exists(_heartbeat_key(stream_key(prefix), consumer)))
    except redis.RedisError:
        return False
    finally:
        client.close()


def run_tip_writer(settings: Settings, consumer: str, stop: threading.Event) -> None:
    """`burgernet tip-writer`: the writer on the configured database and Redis until `stop`."""
    from gateway.storage.db import make_engine, session_factory

    if not settings.redis_url:
        raise ValueError("REDIS_URL is empty: without Redis the IVR writes its tip records itself")
    engine = make_engine(settings.sqlalchemy_url)
    stream = TipStream(settings.redis_url)
    writer = TipStreamWriter(stream, session_factory(engine), consumer)
    log.info("tip writer %s: writing %s to the database", consumer, stream.key)
    try:
        writer.run(stop)
    finally:
        writer.close()
        stream.close()
        engine.dispose()
