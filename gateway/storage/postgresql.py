"""The PostgreSQL-only paths: everything else is SQLAlchemy Core that runs on SQLite too.

Each is here because a benchmark showed it matters, with what it buys; the caller asks
`is_postgresql(session)` and otherwise runs the Core statement beside it.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# A bulletin's messages in one statement, the recipients as three array literals (one parse, one
# round trip, ids back by RETURNING). Measured for 100,000 rows on this machine: ~1.7 s, where
# Core's executemany took 9.4 s (18 s with RETURNING) and bench.sms's launch fell from all queued
# after 4.9 s to 30.9 s, the ratio from 0.74 to 0.41. (Of the 1.7 s, ~1 s are the per-row
# foreign-key checks.)
_INSERT_MESSAGES = text("""
    INSERT INTO message (bulletin_id, action_id, phone, participant_id, channel, status, attempts,
                         created_at, enqueued_at)
    SELECT :bulletin, :action, r.phone, r.participant_id, r.channel, 'queued', 0, :now, :enqueued
      FROM unnest(CAST(:phones AS varchar[]), CAST(:pids AS bigint[]), CAST(:channels AS varchar[]))
           AS r(phone, participant_id, channel)
    RETURNING id, channel
""")


def insert_messages(
    session: Session,
    bulletin_id: int,
    action_id: int,
    rows: Sequence[tuple[str, int | None, str]],
    now: datetime,
    enqueued: datetime | None,
) -> list[tuple[int, str]]:
    """(id, channel) of the new `queued` messages to each (phone, participant id, channel)."""
    found = session.execute(
        _INSERT_MESSAGES,
        {
            "bulletin": bulletin_id,
            "action": action_id,
            "now": now,
            "enqueued": enqueued,
            "phones": pg_texts(phone for phone, _, _ in rows),
            "pids": pg_ints(pid for _, pid, _ in rows),
            "channels": pg_texts(channel for _, _, channel in rows),  # a Channel is a str: its value
        },
    )
    return [(mid, channel) for mid, channel in found.all()]


# --- the SMS worker's statements (gateway/sms/store.py): a batch of ids or outcomes per statement,
# its values as array literals; the Core forms beside them send a statement per row or a bind
# parameter per value. Measured with 20,000 messages (claims of 100, writes of 500), per message,
# the worker's CPU / PostgreSQL's, Core form → this one: claim 14–20 → 7–12 µs; submit written
# 17 → 3 µs / 16 → 5 µs (34–40 → 10–12 / 31–37 → 11–12 with its parts into the DLR map); a
# receipt's lookup up to 735 → 19 µs of PostgreSQL (see _LOOKUP_PARTS) and its final write
# 33–39 → 10–11 µs of the worker. bench.sms with every Core form: 0.32 of the reference.
# `status || ''`: see gateway.queue.lease.status_guard.

# The claim, its dispatch mark and what sending needs, in one statement.
_CLAIM = text("""
    UPDATE message
       SET status = 'sending', attempts = attempts + 1, claimed_by = :worker, claimed_at = :now,
           dispatched_at = :now
     WHERE id = ANY(CAST(:ids AS bigint[])) AND status || '' = 'queued'
 RETURNING id, phone, bulletin_id, detail
""")


def claim_sms(session: Session, message_ids: Iterable[int], worker: str, now: datetime) -> list[Any]:
    """(id, phone, bulletin id, detail) of the messages claimed (gateway.sms.store.claim_sms)."""
    found = cast(
        CursorResult,
        session.execute(_CLAIM, {"ids": pg_ints(sorted(set(message_ids))), "worker": worker, "now": now}),
    )
    rows = list(found.cursor.fetchall())  # the driver's tuples: no conversion is needed, no Row
    found.close()
    return rows


# Rows are joined to the arrays by primary key (`m.id = v.id`): PostgreSQL looks each one up by its
# key — provided its statistics know how big `message` is (refresh_statistics_after_growth).
_SUBMITTED = text("""
    UPDATE message AS m
       SET status = :status, detail = :detail, provider_id = v.pid, sent_at = to_timestamp(v.sent),
           final_at = to_timestamp(v.final)
      FROM unnest(CAST(:ids AS bigint[]), CAST(:pids AS varchar[]), CAST(:ats AS float8[]),
                  CAST(:finals AS float8[])) AS v(id, pid, sent, final)
     WHERE m.id = v.id AND m.status || '' = 'sending'
       AND (m.claimed_by = :worker OR m.claimed_by IS NULL)
""")
_PARTS = text("""
    INSERT INTO sms_part (operator, smsc_message_id, message_id, part, parts, bind, submitted_at)
    SELECT * FROM unnest(CAST(:ops AS varchar[]), CAST(:sids AS varchar[]), CAST(:mids AS bigint[]),
                         CAST(:part AS smallint[]), CAST(:parts AS smallint[]), CAST(:binds AS varchar[]),
                         CAST(:ats AS timestamptz[]))
        ON CONFLICT (operator, smsc_message_id) DO UPDATE
       SET message_id = EXCLUDED.message_id, part = EXCLUDED.part, parts = EXCLUDED.parts, bind = EXCLUDED.bind,
           submitted_at = EXCLUDED.submitted_at, stat = NULL, done_at = NULL
""")


def write_submitted(session: Session, rows: Sequence[dict], parts: Sequence[dict], worker: str) -> None:
    """The same rows and parts as gateway.sms.store._write_submitted's Core statements, one
    statement per outcome (status, detail) for the messages and one for the parts."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["status"], row["detail"])].append(row)
    for (status, detail), group in groups.items():
        session.execute(
            _SUBMITTED,
            {
                "status": status.value,
                "detail": detail,
                "worker": worker,
                "ids": pg_ints(row["mid"] for row in group),
                "pids": pg_texts(row["pid"] for row in group),
                "ats": pg_floats(row["at"].timestamp() for row in group),
                "finals": pg_floats(row["final"] and row["final"].timestamp() for row in group),
            },
        )
    if parts:
        columns = ("operator", "smsc_message_id", "message_id", "part", "parts", "bind", "submitted_at")
        names = ("ops", "sids", "mids", "part", "parts", "binds", "ats")
        session.execute(_PARTS, {name: [p[c] for p in parts] for name, c in zip(names, columns)})


# One primary-key lookup per id (LATERAL), whatever the statistics say: `smsc_message_id IN (…)`
# or `= ANY(:sids)` let PostgreSQL scan every part of the operator and test each against the whole
# list (its generic plan, with no statistics yet on the growing table): 120 ms per batch at 9,000
# parts.
_LOOKUP_PARTS = text("""
    SELECT p.operator, p.smsc_message_id, p.message_id, p.part, p.parts
      FROM unnest(CAST(:sids AS varchar[])) AS s(id)
     CROSS JOIN LATERAL (SELECT * FROM sms_part WHERE operator = :op AND smsc_message_id = s.id) AS p
""")


def lookup_parts(session: Session, operator: str, smsc_ids: list[str]):
    return session.execute(_LOOKUP_PARTS, {"op": operator, "sids": smsc_ids})


_FINAL = text("""
    UPDATE message AS m
       SET status = :status, detail = :detail,
           final_at = (CAST(:ats AS timestamptz[]))[array_position(CAST(:ids AS bigint[]), m.id)]
     WHERE m.id = ANY(CAST(:ids AS bigint[])) AND m.status || '' = 'submitted'
""")


def write_final(
    session: Session, status: str, detail: str | None, members: list[tuple[int, datetime]]
) -> None:
    """`submitted` → `status` for each (message id, final time)."""
    session.execute(
        _FINAL,
        {
            "status": status,
            "detail": detail,
            "ids": [m for m, _ in members],
            "ats": [at for _, at in members],
        },
    )


# ANALYZE once rows added in one go exceed this share of what the statistics think the table holds.
GROWTH_TO_ANALYZE = 0.2


def refresh_statistics_after_growth(session: Session, table: str, added: int) -> None:
    """Let PostgreSQL's planner know that `table` just grew by `added` rows (in this transaction).

    Autovacuum notices a bulk insert only later. Until then a table that was small (a new
    installation, the benchmarks) is still "small" to the planner, which then joins the workers'
    batched key-lookups by scanning it whole once per batch: measured 40 µs per row written
    instead of 13 for the first 100,000-recipient launch. ANALYZE in the same transaction sees the
    new rows; it samples at most 30,000 rows, so it costs tens of milliseconds, and runs only
    when the growth is large relative to the table.
    """
    if not is_postgresql(session) or added < 1000:
        return
    known = session.execute(
        text("SELECT reltuples FROM pg_class WHERE oid = CAST(:t AS regclass)"), {"t": table}
    ).scalar()
    if known is not None and known >= 0 and added <= GROWTH_TO_ANALYZE * known:
        return
    # ANALYZE waits for a VACUUM or ANALYZE of the table that holds its lock (autovacuum, another
    # launch's ANALYZE until that launch commits). A launch must not wait for statistics: give
    # up after a moment (the other one is refreshing them anyway).
    previous = session.execute(text("SHOW lock_timeout")).scalar()
    session.execute(text("SELECT set_config('lock_timeout', '200ms', true)"))
    try:
        with session.begin_nested():
            session.execute(text(f"ANALYZE {table}"))
    except OperationalError as exc:
        log.info("statistics of %s not refreshed (table busy): %s", table, str(exc).splitlines()[0])
    finally:
        session.execute(text("SELECT set_config('lock_timeout', :v, true)"), {"v": previous})


# PostgreSQL array literals for `CAST(:p AS type[])`: one string parameter instead of a list.
# psycopg dumps a list element by element in Python, which was a tenth of the SMS worker's CPU at
# full speed; PostgreSQL parses the literal in C.


def pg_ints(values: Iterable[int | None]) -> str:
    """None is NULL."""
    listed = list(values)
    if None in listed:
        return "{" + ",".join("NULL" if v is None else str(int(v)) for v in listed) + "}"
    return (
        "{" + ",".join(map(str, map(int, cast(list[int], listed)))) + "}"
    )  # the common case: no Python loop


def pg_floats(values: Iterable[float | None]) -> str:
    return "{" + ",".join("NULL" if v is None else repr(float(v)) for v in values) + "}"


def pg_texts(values: Iterable[str | None]) -> str:
    """Each string quoted (backslash and double quote escaped); None is NULL."""
    listed = list(values)
    if None in listed:
        return (
            "{"
            + ",".join(
                "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
                for v in listed
            )
            + "}"
        )
    if not listed:
        return "{}"
    # The common case, escaped all at once: joined by NUL, which no PostgreSQL text can hold.
    joined = "\0".join(cast(list[str], listed))
    if joined.count("\0") != len(listed) - 1:
        raise ValueError("a text for PostgreSQL holds a NUL character")
    return '{"' + joined.replace("\\", "\\\\").replace('"', '\\"').replace("\0", '","') + '"}'
