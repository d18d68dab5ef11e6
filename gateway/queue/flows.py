"""A worker's plan for the queue: which flows (bulletins) are whose, and the scheduler's order.

The queue knows flows by number only (a bulletin id); what the scheduler weighs — the action,
the kind of bulletin, the action's urgency — is read from the database, once per flow and again
every `refresh_seconds`, so that an urgency an admin raised counts within seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.storage.models import Action, Bulletin

from .base import CHUNK
from .schedule import Flow, Scheduler, parse_weights, unknown_flow, urgency_class

REFRESH_SECONDS = 2.0


def load_flows(session: Session, bulletin_ids: Iterable[int]) -> dict[int, Flow]:
    """The flows of these bulletins (those that exist)."""
    ids = sorted(set(bulletin_ids))
    flows: dict[int, Flow] = {}
    for start in range(0, len(ids), CHUNK):
        rows = session.execute(
            select(Bulletin.id, Bulletin.action_id, Bulletin.kind, Bulletin.seq, Action.urgency)
            .join(Action, Action.id == Bulletin.action_id)
            .where(Bulletin.id.in_(ids[start : start + CHUNK]))
        ).all()
        for bulletin_id, action_id, kind, seq, urgency in rows:
            flows[bulletin_id] = Flow(bulletin_id, action_id, kind, seq, urgency_class(urgency, kind))
    return flows


class FlowPlanner:
    """A `Plan` for `WorkQueue.consume`: the queue's waiting flows in the scheduler's order.

    Thread-safe (a worker takes in a thread, its console figures may ask from another)."""

    def __init__(
        self, sessions: sessionmaker[Session], scheduler: Scheduler, refresh_seconds: float = REFRESH_SECONDS
    ) -> None:
        self.sessions = sessions
        self.scheduler = scheduler
        self.refresh_seconds = refresh_seconds
        self._known: dict[int, tuple[Flow, float]] = {}  # flow id → (flow, when read)
        self._lock = threading.Lock()

    def flows(self, flow_ids: Iterable[int]) -> dict[int, Flow]:
        """What each flow id is; ids with no bulletin (0, or one deleted) as `unknown_flow`."""
        ids = set(flow_ids)
        now = time.monotonic()
        stale = {
            i for i in ids if i and (i not in self._known or now - self._known[i][1] > self.refresh_seconds)
        }
        if stale:
            with self.sessions() as session:
                fresh = load_flows(session, stale)
            for i in stale:
                self._known[i] = (fresh.get(i) or unknown_flow(i), now)
        # Forget what no longer waits (the set stays as small as the open bulletins).
        self._known = {i: self._known[i] for i in ids if i in self._known}
        return {i: self._known[i][0] if i in self._known else unknown_flow(i) for i in ids}

    def __call__(self, waiting: Mapping[int, int], count: int) -> list[int]:
        with self._lock:
            flows = self.flows(waiting)
            order = self.scheduler.plan({flows[i]: n for i, n in waiting.items()}, count)
        return [flow.bulletin_id for flow in order]


def planner(sessions: sessionmaker[Session], weights: str) -> FlowPlanner:
    """The plan a channel worker takes by, from SCHEDULE_WEIGHTS."""
    return FlowPlanner(sessions, Scheduler(parse_weights(weights)))
