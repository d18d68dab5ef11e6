"""The SMS worker's outcome writer: submits, failures and receipts, written in batches.

Outcomes gather in a `Batch` (gateway/sms/store.py) and are written every `flush_seconds`, or at
once when enough accepted submits wait: those are what a crash would send twice, so their number
is kept below `unrecorded_cap` (`may_write` holds the senders back meanwhile).

A receipt is acknowledged to the SMSC once written; one whose submit is not (yet) known is kept
for `receipt_patience` — its submit may be recorded later, be proven by it (gateway/sms/limbo.py)
or be the message of a dead worker that comes back once its lease runs out — and acknowledged
when given up. Until then a crash makes the SMSC deliver it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from gateway.storage.models import MessageStatus, utcnow

from .receipts import judge_stat
from .store import Batch, Claimed, Failed, ReceiptIn, SetAside, Submitted, write_batch

log = logging.getLogger(__name__)


@dataclass
class Counts:
    """What the writer has written since the worker started."""

    submitted: int = 0
    failed: int = 0
    delivered: int = 0
    receipts_unknown: int = 0  # given up: no submit with their SMSC id
    set_aside: int = 0  # rows the database refused


class OutcomeWriter:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        worker_id: str,
        open_messages: dict[int, Claimed],
        *,
        unrecorded_cap: int,
        flush_seconds: float,
        receipt_patience: timedelta,
        prove: Callable[[ReceiptIn], bool],
        set_aside: Callable[[SetAside, Claimed | None], None],
        written: Callable[[], None],
    ) -> None:
        self.sessions = sessions
        self.worker_id = worker_id
        self.open = open_messages  # claimed and unfinished: a message leaves once its outcome is written
        self.unrecorded_cap = unrecorded_cap
        self.flush_seconds = flush_seconds
        self.receipt_patience = receipt_patience
        self.prove = prove  # whether an unknown receipt proves a submit in limbo (and records it)
        self.set_aside = set_aside  # a row the database refused, and its message if still open
        self.written = written  # after each write: room to take more
        self.batch = Batch()
        self.counts = Counts()
        self._writing = 0  # accepted submits in the write under way
        self._flushed = asyncio.Event()
        # Set when enough outcomes wait: written without waiting for the next tick.
        self._flush_now = asyncio.Event()

    def __len__(self) -> int:
        return len(self.batch)

    # --- what comes in -------------------------------------------------------------------------

    def submitted(self, item: Submitted) -> None:
        self.batch.add_submitted(item)
        # Write once half the cap is waiting: the write finishes before the sender reaches the cap,
        # in batches big enough that receipts arriving meanwhile are folded into their submits.
        if len(self.batch.submitted) * 2 >= self.unrecorded_cap:
            self._flush_now.set()

    def failed(self, message_id: int, reason: str) -> None:
        self.batch.failed.append(Failed(message_id, reason, utcnow()))

    def receipt(self, entry: ReceiptIn) -> None:
        """A receipt; a final one about a single-part message in this very batch is folded into
        its submit (one write instead of two)."""
        if entry.ack is not None and self.batch.fold(
            entry.operator, entry.ids, entry.status, entry.detail, entry.received_at, entry.ack
        ):
            return
        self.batch.receipts.append(entry)

    async def may_write(self) -> None:
        """Wait while too many accepted submits are not in the database yet."""
        while len(self.batch.submitted) + self._writing >= self.unrecorded_cap:
            self._flush_now.set()
            await self.next_write()

    async def next_write(self) -> None:
        """Wait for the next write (or the next tick with nothing to write)."""
        self._flushed.clear()
        await self._flushed.wait()

    # --- writing -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Write every `flush_seconds`, or at once when asked, until cancelled."""
        while True:
            try:
                await asyncio.wait_for(self._flush_now.wait(), self.flush_seconds)
            except TimeoutError:
                pass
            self._flush_now.clear()
            await self.flush()

    async def flush(self) -> None:
        if not len(self.batch):
            self._flushed.set()
            return
        batch, self.batch = self.batch, Batch()
        self._writing = len(batch.submitted)
        try:
            result = await asyncio.to_thread(write_batch, self.sessions, batch, self.worker_id, judge_stat)
        except Exception:
            self._writing = 0
            # The database is unreachable (rows it refuses are set aside by write_batch, not
            # raised): keep the batch (nothing is acked to anybody that is not also in memory)
            # and try again at the next flush.
            log.exception("SMS worker: writing %d status(es) failed; retrying", len(batch))
            self.batch.put_back(batch)
            await asyncio.sleep(1)
            return
        self._writing = 0
        for refused in result.set_aside:
            row = refused.row
            self.counts.set_aside += 1
            self.set_aside(refused, None if isinstance(row, ReceiptIn) else self.open.get(row.message_id))
        unknown = {id(r) for r in result.unknown}
        for ack in batch.folded:
            ack(0)
        for receipt in batch.receipts:
            if receipt.ack is not None and id(receipt) not in unknown:
                receipt.ack(0)
        for item in batch.submitted:
            self.open.pop(item.message_id, None)
        for failure in batch.failed:
            self.open.pop(failure.message_id, None)
        folded_delivered = sum(1 for s in batch.submitted if s.status == MessageStatus.delivered)
        folded_failed = sum(1 for s in batch.submitted if s.status == MessageStatus.failed)
        self.counts.submitted += len(batch.submitted)
        self.counts.failed += len(batch.failed) + result.failed_by_receipt + folded_failed
        self.counts.delivered += result.delivered + folded_delivered
        self._unknown_receipts(result.unknown)
        self.written()
        self._flushed.set()

    def _unknown_receipts(self, receipts: list[ReceiptIn]) -> None:
        """Receipts whose SMSC id is in no submit written: kept for the next write while they may
        still prove a submit or find theirs; acknowledged and counted once given up."""
        now = utcnow()
        proven = 0
        for receipt in receipts:
            if self.prove(receipt):
                proven += 1
                self.batch.receipts.append(receipt)
            elif now - receipt.received_at < self.receipt_patience:
                self.batch.receipts.append(receipt)
            else:
                if receipt.ack is not None:
                    receipt.ack(0)
                self.counts.receipts_unknown += 1
                log.warning(
                    "SMS receipt for unknown SMSC id %s… (operator %s) ignored",
                    receipt.smsc_message_id[:4],
                    receipt.operator,
                )
        if proven:
            log.info("SMS: %d unanswered submit(s) proven accepted by their receipt, not sent again", proven)
