"""Submits that may have reached the SMSC without the gateway knowing: held, not sent again at once.

A dropped connection can swallow the submit_sm_resp of a submit the SMSC accepted; a message a
dead worker dispatched may already be at the SMSC. Sending such a message again at once would
make it arrive twice. So a single-part one waits `grace` seconds of its bind being up: a delivery
receipt for an unknown SMSC id about the same phone proves it was accepted (and gives its SMSC
id); without one it goes again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .sending import OutMessage
from .store import ReceiptIn

if TYPE_CHECKING:
    from .bind import Bind


@dataclass(slots=True)
class Unanswered:
    """A part (`index`) of a message whose submit may have been accepted unseen."""

    bind: Bind
    message: OutMessage
    index: int
    deadline: float  # the event loop's time when it goes again, unless proven first
    # Dispatched by a dead worker, never written by this one: it goes through `Bind.submit` (as
    # new), not `Bind.resend`.
    fresh: bool


class Limbo:
    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.waiting: dict[str, list[Unanswered]] = {}  # by phone, digits only
        self.proven = 0  # submits proven accepted by their receipt, not sent again

    def __len__(self) -> int:
        return len(self.waiting)

    def takes(self, message: OutMessage) -> bool:
        """Whether `message` waits here: only a single-part message of an action has a receipt
        that can prove it (a part's receipt does not say which part)."""
        return self.grace > 0 and len(message.pdus) == 1 and message.message_id is not None

    def hold(self, bind: Bind, message: OutMessage, index: int, fresh: bool) -> None:
        deadline = asyncio.get_running_loop().time() + self.grace
        entry = Unanswered(bind, message, index, deadline, fresh)
        self.waiting.setdefault(message.phone.lstrip("+"), []).append(entry)

    def send_due(self) -> None:
        """Send again what waited its grace with its bind up (a bind that is down restarts it)."""
        now = asyncio.get_running_loop().time()
        for phone, entries in list(self.waiting.items()):
            keep = []
            for entry in entries:
                if entry.message.done:
                    continue
                if not entry.bind.up:
                    entry.deadline = now + self.grace
                    keep.append(entry)
                elif now < entry.deadline:
                    keep.append(entry)
                elif entry.fresh:
                    entry.bind.submit(entry.message)  # dispatch recorded again before it is written
                else:
                    entry.bind.resend([(entry.message, entry.index)])
            if keep:
                self.waiting[phone] = keep
            else:
                del self.waiting[phone]

    def prove(self, receipt: ReceiptIn) -> Unanswered | None:
        """An unknown receipt about a phone with a submit waiting here: that submit was accepted.
        Returns it, done, with the receipt's SMSC id; None when no waiting submit is proven."""
        entries = self.waiting.get(receipt.recipient)
        if not entries:
            return None
        entry = entries.pop(0)
        if not entries:
            del self.waiting[receipt.recipient]
        if entry.message.done:
            return None
        entry.message.smsc_ids[entry.index] = receipt.smsc_message_id
        entry.message.done = True
        self.proven += 1
        return entry
