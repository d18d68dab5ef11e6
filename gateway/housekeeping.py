"""Periodic jobs that keep the system honest: expire forgotten actions, repair interrupted
launches and lost publishes."""

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from gateway import audit
from gateway.actions import lifecycle
from gateway.actions.fanout import commit_and_publish, repair
from gateway.config import Settings
from gateway.queue import MemoryQueue, WorkQueue
from gateway.stats import rollup
from gateway.storage.models import UserSession
from gateway.tipline.lookup import RouteCache

log = logging.getLogger(__name__)
PRUNE_SECONDS = 3600  # how often the audit trail and old browser sessions are pruned


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


async def run_periodically(name: str, interval: float, job) -> None:
    """Run `job` (blocking) every `interval` seconds until cancelled; an error is logged, not fatal."""
    while True:
        try:
            await asyncio.to_thread(job)
        except Exception:  # a database hiccup must not end housekeeping for good
            log.exception("%s failed; retrying in %.0f s", name, interval)
        await asyncio.sleep(interval)
