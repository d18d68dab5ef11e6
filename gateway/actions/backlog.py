"""What the open actions still have to send, and when everyone should be reached.

For the console's live progress: per open action and channel, the messages still waiting
(queued or being sent) and an estimate of when the last of them goes, if the channel's capacity
is shared by urgency as the workers share it (gateway/queue/schedule.py). The capacity is the
binds' contracted rates for SMS, and for voice the lines over an average call's length
(VOICE_CALL_SECONDS): estimates, not promises — busy numbers, retries and unlimited binds are
not foreseen.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.queue.schedule import completion_estimates, parse_weights, urgency_class
from gateway.queue.settle import OPEN, in_unsettled_bulletin
from gateway.sms.binds import BindConfigError, load_sms_config
from gateway.storage.models import Action, ActionStatus, Bulletin, Channel, Message, Urgency


@dataclass(frozen=True)
class ChannelBacklog:
    channel: Channel
    waiting: int
    eta_seconds: float | None  # None: no estimate (no rate known for the channel)


@dataclass(frozen=True)
class ActionBacklog:
    action_id: int
    urgency: Urgency
    channels: list[ChannelBacklog]


def capacity(settings: Settings) -> dict[Channel, float]:
    """Messages a second each channel can send: 0 when it is not known."""
    try:
        binds = load_sms_config(settings.sms_binds, settings.sms_binds_file, settings.sms_default_bind).binds
        # An unlimited bind (rate 0) has no figure to estimate with.
        sms = (
            0.0 if any(not b.rate_per_second for b in binds) else float(sum(b.rate_per_second for b in binds))
        )
    except BindConfigError:
        sms = 0.0
    return {Channel.sms: sms, Channel.voice: settings.voice_max_calls / settings.voice_call_seconds}


def open_backlog(session: Session, settings: Settings) -> list[ActionBacklog]:
    """Every open action with messages waiting, highest urgency first."""
    rows = session.execute(
        select(Action.id, Action.urgency, Bulletin.id, Bulletin.kind, Message.channel, func.count())
        .join(Bulletin, Bulletin.action_id == Action.id)
        .join(Message, Message.bulletin_id == Bulletin.id)
        .where(Action.status == ActionStatus.open, Message.status.in_(OPEN), in_unsettled_bulletin())
        .group_by(Action.id, Action.urgency, Bulletin.id, Bulletin.kind, Message.channel)
    ).all()
    weights = parse_weights(settings.schedule_weights)
    rates = capacity(settings)
    flows: dict[Channel, dict[int, tuple[float, int]]] = defaultdict(
        dict
    )  # per channel: bulletin → (weight, n)
    action_of: dict[int, tuple[int, Urgency]] = {}
    for action_id, urgency, bulletin_id, kind, channel, n in rows:
        flows[Channel(channel)][bulletin_id] = (weights[urgency_class(urgency, kind)], n)
        action_of[bulletin_id] = (action_id, urgency)
    per_action: dict[int, dict[Channel, tuple[int, float]]] = defaultdict(dict)
    for channel, waiting in flows.items():
        etas = completion_estimates(waiting, rates[channel])
        for bulletin_id, (_, n) in waiting.items():
            action_id = action_of[bulletin_id][0]
            count, eta = per_action[action_id].get(channel, (0, 0.0))
            per_action[action_id][channel] = (count + n, max(eta, etas[bulletin_id]))
    urgency_of = dict(action_of.values())
    order = sorted(per_action, key=lambda a: (list(Urgency).index(urgency_of[a]), a))
    return [
        ActionBacklog(
            a,
            urgency_of[a],
            [
                ChannelBacklog(channel, n, eta if eta != float("inf") else None)
                for channel, (n, eta) in sorted(per_action[a].items(), key=lambda item: item[0].value)
            ],
        )
        for a in order
    ]
