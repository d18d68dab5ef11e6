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

KEPT_TEXTS = 1000  # (bulletin, bind) pairs whose submits are kept: a worker sends a few at a time


@dataclass(frozen=True)
class Parts:
    """A text cut into SMS parts, each encoded in its alphabet, without concatenation header."""

    encoding: str  # gsm7 / ucs2
    chunks: list[bytes]


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
        self._submits: dict[tuple[int, str], P.Submits | str] = {}  # by bulletin id and bind

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
        submits = self._submits_of(item, bind)
        if isinstance(submits, str):
            self.fail(item.message_id, submits)
            return
        # RULE: concatenation reference from the message id: two long messages to one phone
        # (alert, update) get different references.
        pdus = submits.pdus(P.Address.e164(item.phone), item.message_id % 255 + 1)
        message = OutMessage(item.message_id, item.phone, pdus)
        if item.dispatched_before and self.limbo.takes(message):
            # Its worker died after dispatching it: the receipt may prove it already went.
            self.limbo.hold(bind, message, 0, fresh=True)
        else:
            bind.submit(message)

    def _submits_of(self, item: Claimed, bind: Bind) -> P.Submits | str:
        """The bulletin's submits from `bind`'s sender, or why its text cannot go."""
        key = (item.bulletin_id, bind.name)
        submits = self._submits.get(key)
        if submits is None:
            parts = cut(item.text, self.max_parts)
            submits = (
                parts if isinstance(parts, str) else P.Submits(parts.encoding, parts.chunks, bind.source)
            )
            if len(self._submits) >= KEPT_TEXTS:
                self._submits.clear()
            self._submits[key] = submits
        return submits

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
        chunks = P.user_data(parts.chunks, 1)
        pdus = P.submit_pdus(parts.encoding, chunks, bind.source, P.Address.e164(phone), receipt=False)
        target.submit(OutMessage(None, phone, pdus))
