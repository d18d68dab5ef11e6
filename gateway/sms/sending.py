"""What a bind carries and tells: the message on its way out, and the bind's two partners
(the worker's `BindEvents`, the shared `RateLimit`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .bind import Bind
    from .health import BindState


@dataclass(eq=False, slots=True)
class OutMessage:
    """A message on its way out: one PDU per part, the SMSC id of each accepted part."""

    message_id: int | None  # None: a service message (STOP confirmation), not a Message row
    phone: str
    pdus: list[bytes]
    smsc_ids: list[str | None] = field(default_factory=list)
    retries: int = 0  # transient failures and timeouts so far
    done: bool = False
    bind: str = ""

    def __post_init__(self) -> None:
        if not self.smsc_ids:
            self.smsc_ids = [None] * len(self.pdus)

    @property
    def started(self) -> bool:
        return any(self.smsc_ids)


class BindEvents(Protocol):
    """What a bind tells the worker."""

    async def may_write(self) -> None: ...
    def submitted(self, bind: Bind, message: OutMessage) -> None: ...
    def failed(self, bind: Bind, message: OutMessage, reason: str) -> None: ...
    def deliver(self, bind: Bind, pdu: bytes, respond: Callable[[int], None]) -> None: ...
    def health_changed(self, bind: Bind, state: BindState, detail: str) -> None: ...
    def down(self, bind: Bind) -> None: ...
    def unanswered(self, bind: Bind, parts: list[tuple[OutMessage, int]]) -> None: ...


class RateLimit(Protocol):
    async def take(self, wanted: int) -> int: ...
    def written(self, at: float) -> object | None: ...  # the batch's grant, for `accepted`
    def accepted(self, grant: Any, at: float) -> None: ...
