"""The SMS worker's dispatcher: a claimed message's PDUs, handed to the bind its route chooses.

The bulletin's text is cut into parts once per bulletin (gateway/sms/encoding.py; more than
`max_parts` → failed with the reason); each message gets its own submit_sm PDUs (its number, its
concatenation reference) and goes to a bind that is up (gateway/sms/routing.py), or is parked
while none is. When a bind goes down, what it had not started goes over another (failover).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gateway.phone import masked

from . import pdu as P
from .bind import Bind
from .encoding import TextTooLong, check_parts
from .limbo import Limbo
from .routing import NoRoute, Router
from .sending import OutMessage
from .store import Claimed

log = logging.getLogger(__name__)

KEPT_TEXTS = 1000  # bulletins whose parts are kept: a worker sends a few at a time


@dataclass(frozen=True)
class Parts:
    """A text cut into SMS parts, each encoded in its alphabet, without concatenation header."""

    encoding: str  # gsm7 / ucs2
    chunks: list[bytes]

    def pdus(self, source: P.Address, phone: str, reference: int, receipt: bool = True) -> list[bytes]:
        return P.submit_pdus(
            self.encoding, P.user_data(self.chunks, reference), source, P.Address.e164(phone), receipt
        )


def cut(text: str, max_parts: int) -> Parts | str:
    """The parts of `text`, or why it cannot go."""
    try:
        encoded = check_parts(text, max_parts)
        return Parts(encoded.encoding, P.encode_parts(encoded))
    except TextTooLong as exc:
        return str(exc)
    except ValueError as exc:
        return f"text cannot be sent: {exc}"


class Dispatcher:
    def __init__(
        self,
        binds: dict[str, Bind],
        router: Router,
        open_messages: dict[int, Claimed],
        limbo: Limbo,
        fail: Callable[[int, str], None],
        max_parts: int,
    ) -> None:
        self.binds = binds
        self.router = router
        self.open = open_messages  # claimed and unfinished, by message id
        self.limbo = limbo
        self.fail = fail  # (message id, reason): the message cannot go
        self.max_parts = max_parts
        self.parked: deque[Claimed] = deque()  # no bind up for them
        self._parts: dict[int, Parts | str] = {}  # by bulletin id

    def up(self, avoid: str | None = None) -> list[str]:
        return [name for name, b in self.binds.items() if b.up and name != avoid]

    def dispatch(self, item: Claimed, avoid: str | None = None, up: list[str] | None = None) -> None:
        """Route and hand to a bind (`up`: the binds that are up, when the caller knows)."""
        up = self.up(avoid) if up is None else up
        try:
            bind = self.binds[self.router.choose(item.phone, up)]
        except NoRoute:
            self.parked.append(item)
            return
        parts = self._parts_of(item)
        if isinstance(parts, str):
            self.fail(item.message_id, parts)
            return
        # RULE: concatenation reference from the message id: two long messages to one phone
        # (alert, update) get different references.
        message = OutMessage(
            item.message_id, item.phone, parts.pdus(bind.source, item.phone, item.message_id % 255 + 1)
        )
        if item.dispatched_before and self.limbo.takes(message):
            # Its worker died after dispatching it: the receipt may prove it already went.
            self.limbo.hold(bind, message, 0, fresh=True)
        else:
            bind.submit(message)

    def _parts_of(self, item: Claimed) -> Parts | str:
        parts = self._parts.get(item.bulletin_id)
        if parts is None:
            parts = cut(item.text, self.max_parts)
            if len(self._parts) >= KEPT_TEXTS:
                self._parts.clear()
            self._parts[item.bulletin_id] = parts
        return parts

    def dispatch_parked(self) -> None:
        for _ in range(len(self.parked)):
            self.dispatch(self.parked.popleft())

    def failover(self, bind: Bind) -> None:
        """`bind` went down: what it had not started goes over another bind that is up."""
        if not self.up(avoid=bind.name):
            return
        moved = bind.take_unstarted()
        for message in moved:
            item = self.open.get(message.message_id) if message.message_id is not None else None
            if item is None:
                bind.submit(message)
            else:
                self.dispatch(item, avoid=bind.name)
        if moved:
            log.warning("SMS bind %s is down: %d message(s) go over another bind", bind.name, len(moved))

    def send_service(self, bind_name: str | None, phone: str, text: str) -> None:
        """A reply that belongs to no action (the STOP confirmation): through the bind the request
        came in on while that is up, else another; logged, not stored as an action's message."""
        parts = cut(text, self.max_parts)
        if isinstance(parts, str):
            log.error("confirmation text to %s unusable: %s", masked(phone), parts)
            return
        bind = self.binds.get(bind_name or "") or next(iter(self.binds.values()))
        target = bind if bind.up else next((b for b in self.binds.values() if b.up), bind)
        target.submit(OutMessage(None, phone, parts.pdus(bind.source, phone, 1, receipt=False)))
