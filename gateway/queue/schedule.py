"""Who goes next: the open actions' messages share each channel's capacity by urgency.

Actions overlap, and a channel's capacity — a bind's contracted rate, the trunk's voice lines —
is shared between them. A missing child must not wait for a shop theft's backlog, and nobody may
starve. Each waiting bulletin is a *flow*; a flow's share is its urgency class's weight:

    critical  a missing person's alert (or one an admin raised)      weight 8
    high      every other time-critical alert                        weight 4
    follow_up updates and closing messages                           weight 2
    routine   messages that are not time-critical                    weight 1

(defaults; SCHEDULE_WEIGHTS). Every flow with messages waiting gets `weight / sum of weights` of
what is taken, so an action launched behind a backlog of 100,000 is served at the very next take.

`Scheduler.plan` is start-time fair queueing: each flow has a virtual finish time that grows by
`1 / weight` per entry served; the flow with the smallest next finish time goes next, and a flow
that starts (or starts again) waiting begins at the current virtual time — so it neither catches
up on what it missed nor waits for the others' past. Several worker processes each plan their own
takes; each take is weighted, so their sum is too.

Pure: plain data in, plain data out, no I/O (the queue reports what waits, the worker asks).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.storage.models import BulletinKind, Urgency


class UrgencyClass(str, enum.Enum):
    critical = "critical"
    high = "high"
    follow_up = "follow_up"
    routine = "routine"


DEFAULT_WEIGHTS: dict[UrgencyClass, float] = {
    UrgencyClass.critical: 8,
    UrgencyClass.high: 4,
    UrgencyClass.follow_up: 2,
    UrgencyClass.routine: 1,
}


def urgency_class(urgency: Urgency, kind: BulletinKind) -> UrgencyClass:
    """RULE: an alert goes at its action's urgency; its updates and closing message follow at
    follow_up — but never above a routine action's own urgency."""
    if kind == BulletinKind.alert or urgency == Urgency.routine:
        return UrgencyClass(urgency.value)
    return UrgencyClass.follow_up


def parse_weights(text: str) -> dict[UrgencyClass, float]:
    """'critical=8,high=4,follow_up=2,routine=1' (any subset; the rest keep their default)."""
    weights = dict(DEFAULT_WEIGHTS)
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        try:
            cls = UrgencyClass(name.strip())
        except ValueError:
            known = ", ".join(c.value for c in UrgencyClass)
            raise ValueError(f"unknown urgency class {name.strip()!r} (known: {known})") from None
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"weight of {cls.value} is not a number: {value.strip()!r}") from None
        # RULE: nobody starved — every class keeps a share.
        if not (math.isfinite(weight) and weight > 0):
            raise ValueError(f"weight of {cls.value} must be a positive number, not {value.strip()!r}")
        weights[cls] = weight
    return weights


@dataclass(frozen=True)
class Flow:
    """One bulletin's messages on one channel, as the scheduler sees them."""

    bulletin_id: int
    action_id: int | None
    kind: BulletinKind
    seq: int  # 0 for the alert, 1, 2, … for updates (the closing message has 0 too)
    urgency: UrgencyClass

    def waits_for(self, other: Flow) -> bool:
        """RULE: within an action, its alert goes before its updates, and each update before the
        next. A closing message waits for nothing: a close cancels what had not gone out."""
        if other.action_id is None or other.action_id != self.action_id or self.kind != BulletinKind.update:
            return False
        return other.kind == BulletinKind.alert or (
            other.kind == BulletinKind.update and other.seq < self.seq
        )


# A flow the queue holds but nothing is known about (no bulletin; tests publishing bare ids).
def unknown_flow(flow_id: int) -> Flow:
    return Flow(flow_id, None, BulletinKind.alert, 0, UrgencyClass.high)


class Scheduler:
    """Weighted fair order of the waiting flows; keeps each flow's virtual finish time between calls."""

    def __init__(self, weights: Mapping[UrgencyClass, float] = DEFAULT_WEIGHTS) -> None:
        for cls in UrgencyClass:
            if not weights.get(cls, 0) > 0:
                raise ValueError(f"every urgency class needs a positive weight ({cls.value} has none)")
        self.weights = dict(weights)
        self._finish: dict[int, float] = {}  # flow id → virtual finish time of its last entry served
        self._now = 0.0  # virtual time: the start time of the last entry served

    def plan(self, waiting: Mapping[Flow, int], count: int) -> list[Flow]:
        """The next `count` entries to take, in the order to send them: one Flow per entry. Fewer
        when fewer wait. A flow is never planned more often than it has entries waiting."""
        left = {flow: n for flow, n in waiting.items() if n > 0}
        blocked = {f for f in left if any(f.waits_for(g) for g in left)}
        # A flow that starts (or starts again) waiting begins now: no credit for the time it did
        # not wait. One that went on waiting keeps its place, however far behind it is.
        self._finish = {f.bulletin_id: self._finish.get(f.bulletin_id, self._now) for f in left}
        order: list[Flow] = []
        while len(order) < count:
            ready = [f for f in left if f not in blocked]
            if not ready:
                break
            flow = min(ready, key=lambda f: (self._next_finish(f), f.bulletin_id))
            start = self._finish[flow.bulletin_id]
            self._finish[flow.bulletin_id] = self._next_finish(flow)
            self._now = max(self._now, start)
            order.append(flow)
            left[flow] -= 1
            if not left[flow]:
                del left[flow]
                blocked = {f for f in left if any(f.waits_for(g) for g in left)}
        return order

    def _next_finish(self, flow: Flow) -> float:
        return self._finish[flow.bulletin_id] + 1 / self.weights[flow.urgency]


def completion_estimates(waiting: Mapping[int, tuple[float, int]], rate: float) -> dict[int, float]:
    """Seconds until each flow's last message goes, if `rate` messages a second are shared by
    weight from now on: `waiting` maps a key to (weight, messages waiting). The fluid version of
    `Scheduler.plan`: while several wait each gets its share, and a flow that finishes leaves its
    share to the rest. Keys with nothing waiting are done (0 s); no rate: no estimate (inf)."""
    left = {key: float(n) for key, (_, n) in waiting.items() if n > 0}
    done = {key: 0.0 for key, (_, n) in waiting.items() if n <= 0}
    if not rate > 0:
        return {**done, **dict.fromkeys(left, math.inf)}
    weight = {key: waiting[key][0] for key in left}
    elapsed = 0.0
    while left:
        total = sum(weight[key] for key in left)
        # The flow that runs out first at the current shares, and when.
        step = min(left[key] * total / (rate * weight[key]) for key in left)
        elapsed += step
        for key in list(left):
            left[key] -= rate * weight[key] / total * step
            if left[key] <= 1e-9:
                del left[key]
                done[key] = elapsed
    return done
