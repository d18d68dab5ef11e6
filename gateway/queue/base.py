"""The work-queue interface shared by the Redis Streams queue and its in-process substitute."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

DEFAULT_PREFIX = "burgernet:"
DEFAULT_GROUP = "workers"
DEFAULT_CLAIM_IDLE_MS = 60_000
# Ids per Redis pipeline / per SQL IN list.
CHUNK = 1000


class Delivery(NamedTuple):
    """One message id handed to a consumer: ack `entry_id` once `message_id` is dealt with.
    `entry_id` is opaque: it names the flow and the entry in it."""

    entry_id: str
    message_id: int


# A channel's queue is split into flows — one per bulletin, its id the bulletin's (0: ids published
# without one) — so that a consumer can choose whose messages it takes (gateway/queue/schedule.py).
# A plan gets the entries waiting per flow and how many entries are wanted, and returns the flow
# of each entry to take, in the order they should be handed out.
Plan = Callable[[Mapping[int, int], int], list[int]]


def oldest_first(waiting: Mapping[int, int], count: int) -> list[int]:
    """The plan without urgency: flows in the order their bulletins were made."""
    order: list[int] = []
    for flow in sorted(waiting):
        order += [flow] * min(waiting[flow], count - len(order))
    return order


def entry_id(flow: int, entry: str) -> str:
    return f"{flow}/{entry}"


def split_entry_id(value: str) -> tuple[int, str]:
    flow, _, entry = value.partition("/")
    return int(flow), entry


@runtime_checkable
class WorkQueue(Protocol):
    """Per-channel queues of message ids with at-least-once delivery. Synchronous: callers in
    asyncio wrap calls in `asyncio.to_thread`."""

    def publish(self, channel: str, message_ids: Sequence[int], flow: int = 0) -> None:
        """Append the ids, in order, to the channel's queue, in `flow` (a bulletin id)."""

    def consume(
        self, channel: str, consumer: str, count: int = 100, block_ms: int = 1000, plan: Plan = oldest_first
    ) -> list[Delivery]:
        """About `count` messages for `consumer` (whole entries: an entry may carry several ids,
        each returned as a Delivery with the entry's id), from the flows `plan` picks and in its
        order; within a flow, first entries another consumer left unacked for longer than
        `claim_idle_ms`, then new ones. Waits up to `block_ms` (0: do not wait) when there is
        nothing; returns [] then."""

    def waiting(self, channel: str) -> dict[int, int]:
        """Entries not acked yet, per flow (flows with none are left out)."""

    def ack(self, channel: str, entry_ids: Sequence[str]) -> None:
        """Done with these entries: they are removed and never delivered again."""

    def pending(self, channel: str) -> int:
        """Entries delivered to some consumer but not acked yet."""

    def backlog(self, channel: str) -> int:
        """Entries not acked yet: not yet delivered plus pending (0: the queue is empty). An SMS
        entry on Redis carries several ids, so this is not a count of messages."""

    def close(self) -> None:
        """Release connections; the queue is unusable afterwards."""


def channel_name(channel: str) -> str:
    """'sms' for both 'sms' and Channel.sms (whose str() is 'Channel.sms')."""
    name = channel.value if isinstance(channel, enum.Enum) else channel
    if not isinstance(name, str) or not name:
        raise ValueError(f"invalid channel {channel!r}")
    return name
