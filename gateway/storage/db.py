"""Engines and sessions: the only place that knows how to connect to the database."""

import logging
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)


def make_engine(url: str, **kwargs) -> Engine:
    """An engine for `url`, with SQLite tuned for one writer and many readers."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            # Targeting reads ~100k index-ordered rows per action: memory-mapped reads and a
            # larger page cache cut that by ~10% (bench/targeting).
            cur.execute("PRAGMA mmap_size=268435456")
            cur.execute("PRAGMA cache_size=-65536")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)  # a pooled connection is tested before each use
    return create_engine(url, **kwargs)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


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
    if session.get_bind().dialect.name != "postgresql" or added < 1000:
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
    """None is NULL (the same for pg_floats)."""
    values = list(values)
    if None in values:
        return "{" + ",".join("NULL" if v is None else str(int(v)) for v in values) + "}"
    return "{" + ",".join(map(str, map(int, values))) + "}"  # the common case: no Python loop


def pg_floats(values: Iterable[float | None]) -> str:
    return "{" + ",".join("NULL" if v is None else repr(float(v)) for v in values) + "}"


def pg_texts(values: Iterable[str | None]) -> str:
    """Each string quoted (backslash and double quote escaped); None is NULL."""
    values = list(values)
    if None in values:
        return (
            "{"
            + ",".join(
                "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
                for v in values
            )
            + "}"
        )
    if not values:
        return "{}"
    # The common case, escaped all at once: joined by NUL, which no PostgreSQL text can hold.
    joined = "\0".join(values)
    if joined.count("\0") != len(values) - 1:
        raise ValueError("a text for PostgreSQL holds a NUL character")
    return '{"' + joined.replace("\\", "\\\\").replace('"', '\\"').replace("\0", '","') + '"}'
