"""Periodic jobs that keep the system honest: expire forgotten actions, repair interrupted
launches and lost publishes, roll up statistics, prune old data.

They run in one process at a time: `burgernet housekeeping` (its own service, so that API replicas
do not each run them), or the API itself with HOUSEKEEPING_IN_API. Either way the jobs only run
while their process holds `HousekeepingLock` — a PostgreSQL advisory lock on a connection of its
own: a second runner waits, and takes over within a few seconds when the first dies (its
connection closes, the database frees the lock).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, delete, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gateway import audit
from gateway.actions import lifecycle
from gateway.actions import messages as municipality_messages
from gateway.actions.fanout import commit_and_publish, repair
from gateway.config import Settings
from gateway.queue import MemoryQueue, WorkQueue
from gateway.stats import rollup
from gateway.storage.models import UserSession
from gateway.tipline.lookup import RouteCache

log = logging.getLogger(__name__)
PRUNE_SECONDS = 3600  # how often the audit trail and old browser sessions are pruned
# The advisory lock's key: any constant no other user of the database takes ("BNHK").
LOCK_KEY = 0x424E484B
LOCK_RETRY_SECONDS = 5.0  # how often a waiting runner tries the lock, and the holder checks it


def expire_actions(
    sessions: sessionmaker[Session],
    queue: WorkQueue,
    now: datetime | None = None,
    *,
    route_cache: RouteCache | None = None,
) -> int:
    """Close every open action past its expiry time and queue its closing messages."""
    now = now or datetime.now(UTC)
    with sessions() as session:
        closed = lifecycle.expire_due(session, now)
        for queued in closed:  # the first commits them all
            commit_and_publish(session, sessions, queue, queued, route_cache)
    if closed:
        log.info("expired %d action(s)", len(closed))
    return len(closed)


def roll_up_statistics(
    sessions: sessionmaker[Session], settings: Settings, now: datetime | None = None
) -> int:
    """Move settled actions' message counts into the statistics rollup and rebuild the sign-up
    rollup (gateway.stats.rollup); returns how many actions were rolled up."""
    now = now or datetime.now(UTC)
    done = rollup.roll_up_settled(sessions, now, settings.stats_settle_hours)
    with sessions() as session:
        rollup.rebuild_signups(session, now)
        session.commit()
    if done:
        log.info("rolled up the messages of %d settled action(s)", done)
    return done


def prune(sessions: sessionmaker[Session], settings: Settings, now: datetime | None = None) -> int:
    """Delete audit events past AUDIT_RETENTION_DAYS and browser sessions that have expired;
    returns how many audit events went."""
    now = now or datetime.now(UTC)
    with sessions() as session:
        pruned = audit.prune(session, now, settings.audit_retention_days)
        session.execute(delete(UserSession).where(UserSession.expires_at < now))
        session.commit()
    if pruned:
        log.info("deleted %d audit event(s) older than %d days", pruned, settings.audit_retention_days)
    return pruned


def startup_reconcile(
    sessions: sessionmaker[Session],
    queue: WorkQueue,
    settings: Settings,
    route_cache: RouteCache | None = None,
) -> int:
    """At start-up: an in-process queue starts empty, so everything still queued goes back on it."""
    count = repair(
        sessions,
        queue,
        settings.reconcile_grace_seconds,
        route_cache=route_cache,
        republish_all=isinstance(queue, MemoryQueue),
    )
    if count:
        log.info("re-queued %d message(s) left queued by an earlier run", count)
    return count


async def run_periodically(
    name: str, interval: float, job: Callable[[], object], stop: asyncio.Event | None = None
) -> None:
    """Run `job` (blocking) every `interval` seconds until `stop` is set (then after the run under
    way) or the task is cancelled; an error is logged, not fatal."""
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            await asyncio.to_thread(job)
        except Exception:  # a database hiccup must not end housekeeping for good
            log.exception("%s failed; retrying in %.0f s", name, interval)
        await _wait(stop, interval)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` is set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


class HousekeepingLock:
    """Who may run the jobs: the holder of a PostgreSQL advisory lock, kept on its own connection.
    On SQLite (one process by design) every caller holds it."""

    def __init__(self, engine: Engine, key: int = LOCK_KEY) -> None:
        self.engine, self.key = engine, key
        self._conn: Connection | None = None

    @property
    def shared(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def acquire(self) -> bool:
        """Take the lock if free (never waits); True when this process holds it now."""
        if not self.shared:
            return True
        if self._conn is None:
            self._conn = self.engine.connect()
        got = bool(self._conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}))
        self._conn.commit()  # no transaction left open on the lock's connection
        if not got:
            self.release()
        return got

    def still_held(self) -> bool:
        """Whether the lock's connection still works (the lock goes with it)."""
        if not self.shared:
            return True
        if self._conn is None:
            return False
        try:
            self._conn.scalar(text("SELECT 1"))
            self._conn.commit()
            return True
        except SQLAlchemyError:
            self.release()
            return False

    def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()  # the session's advisory locks end with it
            except SQLAlchemyError:
                pass


def periodic_jobs(
    sessions: sessionmaker[Session],
    queue: WorkQueue,
    settings: Settings,
    route_cache: RouteCache | None = None,
) -> list[tuple[str, float, Callable[[], object]]]:
    """Every periodic job: (name, interval in seconds, the blocking job)."""
    return [
        (
            "expiry",
            settings.expiry_check_seconds,
            lambda: expire_actions(sessions, queue, route_cache=route_cache),
        ),
        (
            "reconcile",
            settings.reconcile_interval_seconds,
            lambda: repair(sessions, queue, settings.reconcile_grace_seconds, route_cache=route_cache),
        ),
        ("stats-rollup", settings.stats_rollup_seconds, lambda: roll_up_statistics(sessions, settings)),
        (
            "release-waiting",
            municipality_messages.RELEASE_SECONDS,
            lambda: municipality_messages.release_waiting(sessions, queue),
        ),
        ("prune", PRUNE_SECONDS, lambda: prune(sessions, settings)),
    ]


async def run_housekeeping(
    lock: HousekeepingLock,
    jobs: list[tuple[str, float, Callable[[], object]]],
    stop: asyncio.Event,
    on_lead: Callable[[], Awaitable[object]] | None = None,
    retry_seconds: float = LOCK_RETRY_SECONDS,
) -> None:
    """Run `jobs` while holding `lock`, until `stop` (jobs under way finish first). Without the
    lock: try again every `retry_seconds`; lost (its connection broke): stop the jobs, wait for it
    again. `on_lead` runs once each time the lock is taken, before the jobs."""
    while not stop.is_set():
        try:
            held = await asyncio.to_thread(lock.acquire)
        except SQLAlchemyError as exc:
            log.warning("housekeeping: the database is away (%s); retrying", type(exc).__name__)
            held = False
        if not held:
            await _wait(stop, retry_seconds)
            continue
        log.info("housekeeping: this process runs the periodic jobs")
        lost = asyncio.Event()  # set when the lock is gone or on stop: the jobs end
        try:
            if on_lead is not None:
                try:
                    await on_lead()
                except Exception:  # the periodic repair catches up with it
                    log.exception("housekeeping: the start-up reconcile failed")
            tasks = [
                asyncio.create_task(run_periodically(name, every, job, lost)) for name, every, job in jobs
            ]
            while not stop.is_set():
                await _wait(stop, retry_seconds)
                if not stop.is_set() and not await asyncio.to_thread(lock.still_held):
                    log.warning("housekeeping: lost the lock (database connection); waiting for it again")
                    break
            lost.set()
            await asyncio.gather(*tasks)  # each finishes the run under way
        finally:
            lost.set()
            lock.release()
