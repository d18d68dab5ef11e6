"""The SMS worker's SQL edge: claiming with what sending needs, and statuses written in batches.

Every outcome (a message submitted with its parts' SMSC ids, a failure with its reason, a
delivery receipt) is collected and written by `write_batch` in one transaction per batch, never
one commit per PDU. Writes are guarded by the message's current status, so a late or repeated
event never overwrites a later state.

The DLR map is the `sms_part` table: one row per accepted part, inserted in the same transaction
that sets the message `submitted`, so it survives a gateway restart with the status it explains.
Chosen over Redis because it is then atomic with the status and as durable as the message; the
receipt lookup is one indexed `IN` query per batch. A receipt whose id is not (yet) there is
returned to the caller, tried again in the next batches (its submit may still be on its way to
the database — e.g. the receipt came over a receiver bind first), then logged and ignored.

SMSC ids are not trusted to be unique: an SMSC's counter restarts at 1 after the SMSC restarts,
and counters wrap. RULE: the later submit wins — a part stored under an (operator, SMSC id) that
is already in the map replaces that row, and a receipt with that id is matched to the later
submit. The earlier message keeps its status (`submitted`, which counts as reached); its own
receipt, should it still come, cannot be told apart by the SMSC id and is taken as the later
one's. Keying on the destination as well was not chosen: SMSCs do not all echo the destination
in the receipt's source_addr in one form, and a receipt that no longer matches would be lost.
(docs/sms.md)

One bad row never holds up the others: a batch the database refuses for what is in a row (a
constraint, a value out of range — not a connection that is away, which is retried whole) is
written again in halves until the offending rows are isolated; those are set aside with the
reason (`BatchResult.set_aside`) and everything else is written.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, case, or_, select, update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gateway.errors import brief
from gateway.queue.lease import REQUEUED_DISPATCHED_DETAIL, status_guard
from gateway.storage import postgresql
from gateway.storage.db import upsert
from gateway.storage.models import Bulletin, Message, MessageStatus, SmsPart, utcnow

log = logging.getLogger(__name__)

CHUNK = 1000
StatStatus = Callable[[str], "tuple[MessageStatus | None, str]"]

_message = cast(Table, Message.__table__)
_part = cast(Table, SmsPart.__table__)


@dataclass(slots=True)  # not frozen: one per message, and a frozen __init__ costs ~2 µs more
class Claimed:
    """A claimed SMS: whom it goes to and what it says."""

    message_id: int
    phone: str
    bulletin_id: int
    text: str
    # Dispatched by a worker that died: it may already be at the SMSC.
    dispatched_before: bool = False


def claim_sms(
    sessions: sessionmaker[Session],
    message_ids: Sequence[int],
    worker: str,
    texts: dict[int, str] | None = None,
) -> list[Claimed]:
    """Claim (queued → sending, leased to `worker`, dispatched) and load what sending needs; one commit.

    The dispatch mark comes with the claim: a claimed SMS is written to the SMSC within
    milliseconds, and a separate mark before each write was a fifth of the worker's database
    writes. After a crash every claimed SMS therefore counts as possibly sent; the next worker
    waits for a receipt that proves it before sending it again (see the worker's `limbo`).
    `texts` (bulletin id → SMS text) is the caller's cache: only bulletins not in it are read.
    """
    now = utcnow()
    texts = {} if texts is None else texts
    with sessions() as session, session.begin():
        # Claim, dispatch mark and what sending needs in one statement (see gateway.queue.claim
        # for the rule). The bulletin's text is not returned: it would travel once per message.
        if postgresql.is_postgresql(session):
            rows = postgresql.claim_sms(session, message_ids, worker, now)
        else:
            rows = [tuple(row) for row in session.execute(_claim(message_ids, worker, now))]
        if len(texts) > 1000:
            texts.clear()
        missing = {bid for _, _, bid, _ in rows} - texts.keys()
        if missing:
            texts.update(
                session.execute(select(Bulletin.id, Bulletin.sms_text).where(Bulletin.id.in_(missing))).all()
            )
    # In the order asked for: the scheduler's (gateway/queue/schedule.py), which interleaves the
    # actions waiting; within an action, the launch's order.
    position = {message_id: i for i, message_id in enumerate(message_ids)}
    rows.sort(key=lambda row: position[row[0]])
    return [
        Claimed(mid, phone, bid, texts[bid], detail == REQUEUED_DISPATCHED_DETAIL)
        for mid, phone, bid, detail in rows
    ]


def _claim(message_ids: Sequence[int], worker: str, now: datetime):
    return (
        update(_message)
        .where(_message.c.id.in_(sorted(set(message_ids))), status_guard(MessageStatus.queued))
        .values(
            status=MessageStatus.sending,
            attempts=_message.c.attempts + 1,
            claimed_by=worker,
            claimed_at=now,
            dispatched_at=now,
        )
        .returning(_message.c.id, _message.c.phone, _message.c.bulletin_id, _message.c.detail)
    )


@dataclass(slots=True)
class Submitted:
    message_id: int
    operator: str
    bind: str
    smsc_ids: tuple[str, ...]
    at: datetime
    # The final outcome, when the (single-part) message's receipt came before its submit was
    # written: then the message goes from `sending` to final in one write, and needs no sms_part
    # row (nothing is left for a receipt to find).
    status: MessageStatus | None = None
    detail: str | None = None
    final_at: datetime | None = None
    # Written without its parts in the receipt map (they were refused: see SetAside); its
    # receipts then find nothing and it stays `submitted`.
    unmapped: bool = False


@dataclass(frozen=True)
class Failed:
    message_id: int
    reason: str
    at: datetime


@dataclass(slots=True)  # one per part sent (see Claimed)
class ReceiptIn:
    """A delivery receipt as it arrived: which SMSC id, its stat, and our verdict of that stat."""

    operator: str
    smsc_message_id: str
    stat: str
    status: MessageStatus | None  # delivered / failed, None while not final (ENROUTE …)
    detail: str
    done_at: datetime | None
    received_at: datetime
    recipient: str = ""  # the phone the receipt is about (its source_addr), digits only
    # Sends the deliver_sm_resp: called once the receipt is written (or given up).
    ack: Callable[[int], None] | None = field(default=None, compare=False, repr=False)
    # Spellings under which the submit_sm_resp may have given the id (hex/decimal, case), best first.
    ids: tuple[str, ...] = ()


@dataclass
class Batch:
    """Outcomes waiting to be written together."""

    submitted: list[Submitted] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)
    receipts: list[ReceiptIn] = field(default_factory=list)
    # The deliver_sm_resp of each receipt folded into `submitted` (its outcome): sent once the
    # batch is written.
    folded: list[Callable[[int], None]] = field(default_factory=list)
    # (operator, SMSC id) → index in `submitted` of a single-part message without outcome yet
    _waiting: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.submitted) + len(self.failed) + len(self.receipts)

    def add_submitted(self, item: Submitted) -> None:
        if len(item.smsc_ids) == 1:
            self._waiting[(item.operator, item.smsc_ids[0])] = len(self.submitted)
        self.submitted.append(item)

    def fold(
        self,
        operator: str,
        ids: tuple[str, ...],
        status: MessageStatus | None,
        detail: str,
        at: datetime,
        ack: Callable[[int], None],
    ) -> bool:
        """Take a final receipt (`status`) of a single-part message submitted in this very batch
        into its submit (one write instead of two; no ReceiptIn for the common case); False when
        the receipt is not about one. `ids`: the spellings of its SMSC id (ReceiptIn.ids)."""
        if status is None:
            return False
        for smsc_id in ids:
            index = self._waiting.pop((operator, smsc_id), None)
            if index is not None:
                item = self.submitted[index]
                item.status, item.detail, item.final_at = status, detail[:200] or None, at
                self.folded.append(ack)
                return True
        return False

    def put_back(self, unwritten: Batch) -> None:
        """A batch whose write failed goes in front of this one (written first next time)."""
        self.submitted[:0] = unwritten.submitted
        self.failed[:0] = unwritten.failed
        self.receipts[:0] = unwritten.receipts
        self.folded[:0] = unwritten.folded
        self._waiting = {
            (s.operator, s.smsc_ids[0]): i
            for i, s in enumerate(self.submitted)
            if s.status is None and len(s.smsc_ids) == 1
        }


Row = Submitted | Failed | ReceiptIn


@dataclass(frozen=True)
class SetAside:
    """A row the database refused, and why; `written_unmapped`: a submit written without its
    parts in the receipt map (the message is `submitted`, its receipts will find nothing)."""

    row: Row
    reason: str
    written_unmapped: bool = False


@dataclass(frozen=True)
class BatchResult:
    unknown: list[ReceiptIn]  # receipts whose SMSC id is not in sms_part
    delivered: int
    failed_by_receipt: int
    set_aside: list[SetAside] = field(default_factory=list)

    def __add__(self, other: BatchResult) -> BatchResult:
        return BatchResult(
            self.unknown + other.unknown,
            self.delivered + other.delivered,
            self.failed_by_receipt + other.failed_by_receipt,
            self.set_aside + other.set_aside,
        )


def refused_row(exc: BaseException) -> bool:
    """Whether the database refused what a row holds (a constraint, a value that does not fit),
    as opposed to being away: only then does writing the batch in parts help."""
    return isinstance(exc, (IntegrityError, DataError)) and not (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def write_batch(
    sessions: sessionmaker[Session], batch: Batch, worker: str, stat_status: StatStatus
) -> BatchResult:
    """Write a batch of outcomes; rows the database refuses are set aside, the rest is written.

    One transaction for the whole batch when it goes through (the normal case). Raises only when
    the database is away (or for an error no smaller batch would avoid): then nothing is written
    and the caller keeps the batch."""
    try:
        return _write_once(sessions, batch, worker, stat_status)
    except (IntegrityError, DataError) as exc:
        if not refused_row(exc):
            raise
        rows: list[Row] = [*batch.submitted, *batch.failed, *batch.receipts]
        return _write_isolating(sessions, rows, worker, stat_status)


def _write_isolating(
    sessions: sessionmaker[Session], rows: list[Row], worker: str, stat_status: StatStatus
) -> BatchResult:
    """Halves, recursively, until the refused rows are alone (log2 of the batch transactions deep);
    in order, so that submits still go before the receipts that need them."""
    try:
        return _write_once(sessions, _batch_of(rows), worker, stat_status)
    except (IntegrityError, DataError) as exc:
        if not refused_row(exc):
            raise
        if len(rows) > 1:
            middle = len(rows) // 2
            return _write_isolating(sessions, rows[:middle], worker, stat_status) + _write_isolating(
                sessions, rows[middle:], worker, stat_status
            )
        # The database's own words, without the driver's exception class in front.
        return _set_aside(sessions, rows[0], brief(getattr(exc, "orig", None) or exc), worker, stat_status)


def _set_aside(
    sessions: sessionmaker[Session], row: Row, reason: str, worker: str, stat_status: StatStatus
) -> BatchResult:
    # A submit whose receipt-map rows were refused still records its message as submitted.
    if isinstance(row, Submitted) and not row.unmapped:
        try:
            _write_once(sessions, _batch_of([dataclasses.replace(row, unmapped=True)]), worker, stat_status)
        except (IntegrityError, DataError) as exc:
            if not refused_row(exc):
                raise
        else:
            return BatchResult([], 0, 0, [SetAside(row, reason, written_unmapped=True)])
    return BatchResult([], 0, 0, [SetAside(row, reason)])


def _batch_of(rows: list[Row]) -> Batch:
    return Batch(
        submitted=[r for r in rows if isinstance(r, Submitted)],
        failed=[r for r in rows if isinstance(r, Failed)],
        receipts=[r for r in rows if isinstance(r, ReceiptIn)],
    )


def _write_once(
    sessions: sessionmaker[Session], batch: Batch, worker: str, stat_status: StatStatus
) -> BatchResult:
    """A batch of outcomes in one transaction (submits first, so that a receipt in the same batch
    finds its part). `stat_status` judges a receipt's stat (gateway.sms.inbound.receipt_status)."""
    with sessions() as session, session.begin():
        if batch.submitted:
            _write_submitted(session, batch.submitted, worker)
        if batch.failed:
            session.execute(
                update(_message)
                .where(_message.c.id == bindparam("mid"), _message.c.status == MessageStatus.sending.value)
                .values(status=MessageStatus.failed, detail=bindparam("reason"), final_at=bindparam("at")),
                [{"mid": f.message_id, "reason": f.reason[:200], "at": f.at} for f in batch.failed],
            )
        if batch.receipts:
            return _write_receipts(session, batch.receipts, stat_status)
    return BatchResult([], 0, 0)


def _write_submitted(session: Session, submitted: list[Submitted], worker: str) -> None:
    """`submitted` (waiting for receipts, so with its parts in the DLR map), or the final status a
    folded receipt gave."""
    rows = [
        {
            "mid": s.message_id,
            "status": s.status or MessageStatus.submitted,
            "detail": s.detail,
            "pid": s.smsc_ids[0][:64],
            "at": s.at,
            "final": s.final_at,
            "worker": worker,
        }
        for s in submitted
    ]
    # RULE: the later submit wins an SMSC id seen before (module docstring), within a batch too.
    parts = list(
        {
            (s.operator, smsc_id): {
                "operator": s.operator,
                "smsc_message_id": smsc_id,
                "message_id": s.message_id,
                "part": index + 1,
                "parts": len(s.smsc_ids),
                "bind": s.bind,
                "submitted_at": s.at,
            }
            for s in submitted
            if s.status is None and not s.unmapped
            for index, smsc_id in enumerate(s.smsc_ids)
        }.values()
    )
    if postgresql.is_postgresql(session):
        postgresql.write_submitted(session, rows, parts, worker)
        return
    session.execute(
        update(_message)
        .where(
            _message.c.id == bindparam("mid"),
            status_guard(MessageStatus.sending),
            or_(_message.c.claimed_by == bindparam("worker"), _message.c.claimed_by.is_(None)),
        )
        .values(
            status=bindparam("status"),
            detail=bindparam("detail"),
            provider_id=bindparam("pid"),
            sent_at=bindparam("at"),
            final_at=bindparam("final"),
        ),
        rows,
    )
    if parts:
        session.execute(_parts_upsert(session), parts)


def _parts_upsert(session: Session):
    insert = upsert(session.get_bind().dialect.name, _part)
    new = insert.excluded
    return insert.on_conflict_do_update(
        index_elements=[_part.c.operator, _part.c.smsc_message_id],
        set_={
            "message_id": new.message_id,
            "part": new.part,
            "parts": new.parts,
            "bind": new.bind,
            "submitted_at": new.submitted_at,
            "stat": None,
            "done_at": None,
        },
    )


def _lookup_parts(
    session: Session, keys: set[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, int, int]]:
    """(operator, SMSC id) → (message id, part, parts) of the stored parts among `keys`."""
    by_operator: dict[str, list[str]] = defaultdict(list)
    for operator, smsc_id in keys:
        by_operator[operator].append(smsc_id)
    rows: dict[tuple[str, str], tuple[int, int, int]] = {}
    columns = select(
        _part.c.operator, _part.c.smsc_message_id, _part.c.message_id, _part.c.part, _part.c.parts
    )
    for operator, ids in by_operator.items():
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            if postgresql.is_postgresql(session):
                found = postgresql.lookup_parts(session, operator, chunk)
            else:
                found = session.execute(
                    columns.where(_part.c.operator == operator, _part.c.smsc_message_id.in_(chunk))
                )
            for op, smsc_id, message_id, part, parts in found:
                rows[(op, smsc_id)] = (message_id, part, parts)
    return rows


def _write_receipts(session: Session, receipts: list[ReceiptIn], stat_status: StatStatus) -> BatchResult:
    found = _lookup_parts(
        session, {(r.operator, i) for r in receipts for i in (r.ids or (r.smsc_message_id,))}
    )
    # Each receipt under the id its part was stored with (the first spelling that is there).
    resolved: list[ReceiptIn] = []
    unknown: list[ReceiptIn] = []
    for r in receipts:
        stored = next((i for i in (r.ids or (r.smsc_message_id,)) if (r.operator, i) in found), None)
        if stored is None:
            unknown.append(r)
        else:
            resolved.append(dataclasses.replace(r, smsc_message_id=stored))
    known = resolved
    if not known:
        return BatchResult(unknown, 0, 0)
    # A part's stat is kept only where other parts wait for it (concatenated messages); a
    # single-part message's outcome goes straight to the message.
    multi_parts = [r for r in known if found[(r.operator, r.smsc_message_id)][2] > 1]
    if multi_parts:
        session.execute(
            update(_part)
            .where(_part.c.operator == bindparam("op"), _part.c.smsc_message_id == bindparam("sid"))
            .values(stat=bindparam("stat"), done_at=bindparam("done")),
            [
                {"op": r.operator, "sid": r.smsc_message_id, "stat": r.stat[:8], "done": r.done_at}
                for r in multi_parts
            ],
        )
    # RULE: a concatenated message is delivered when every part is; it fails as soon as one part fails.
    outcome: dict[int, tuple[MessageStatus, str, datetime]] = {}
    multi: set[int] = set()
    for r in known:
        message_id, _, parts = found[(r.operator, r.smsc_message_id)]
        if r.status is None:
            continue
        if parts == 1:
            outcome[message_id] = (r.status, r.detail, r.received_at)
        else:
            multi.add(message_id)
    if multi:
        by_message: dict[int, list[tuple[str | None, int]]] = defaultdict(list)
        for message_id, stat, parts in session.execute(
            select(_part.c.message_id, _part.c.stat, _part.c.parts).where(
                _part.c.message_id.in_(sorted(multi))
            )
        ):
            by_message[message_id].append((stat, parts))
        latest = {found[(r.operator, r.smsc_message_id)][0]: r for r in known}
        for message_id, stats in by_message.items():
            parts = stats[0][1]
            verdicts = [stat_status(stat) if stat else (None, "") for stat, _ in stats]
            received = latest[message_id].received_at
            failed = [detail for status, detail in verdicts if status == MessageStatus.failed]
            if failed:
                outcome[message_id] = (MessageStatus.failed, f"a part failed: {failed[0]}", received)
            elif len(stats) >= parts and all(status == MessageStatus.delivered for status, _ in verdicts):
                outcome[message_id] = (MessageStatus.delivered, f"all {parts} parts delivered", received)
    # One UPDATE per (status, detail) — in practice "delivered" and a few failure reasons.
    groups: dict[tuple[MessageStatus, str | None], list[tuple[int, datetime]]] = defaultdict(list)
    for message_id, (status, why, at) in outcome.items():
        groups[(status, (why or "")[:200] or None)].append((message_id, at))
    for (status, final_detail), members in groups.items():
        if postgresql.is_postgresql(session):
            postgresql.write_final(session, status.value, final_detail, members)
            continue
        for start in range(0, len(members), CHUNK):
            chunk = members[start : start + CHUNK]
            session.execute(
                update(_message)
                .where(
                    _message.c.id.in_([m for m, _ in chunk]),
                    status_guard(MessageStatus.submitted),
                )
                .values(status=status, detail=final_detail, final_at=case(dict(chunk), value=_message.c.id))
            )
    delivered = sum(1 for s, _, _ in outcome.values() if s == MessageStatus.delivered)
    return BatchResult(unknown, delivered, len(outcome) - delivered)
