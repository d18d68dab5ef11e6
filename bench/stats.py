"""Statistics benchmark: every dashboard query on a year of national data in PostgreSQL.

    .venv/bin/python -m bench.stats [--actions 8400] [--messages 23000000] [--reseed] [--runs 7]

Prepares the PostgreSQL database `burgernet_bench_stats`: 1.6 M participants (gateway.seed) and a
year of actions (gateway.seed_year: ~8,400 actions, ~23 M messages, tips, outcomes), then rolls up
the settled actions as the housekeeping job does (gateway.stats.rollup). Every run rebuilds the
sign-up rollup first, as that job does every few minutes, and prints how long it took. The database is reused
while it holds the requested numbers of actions and participants; the seeding times are printed
when it is made.

Each dashboard query is the service function the API route calls (gateway.stats.report), timed
after one warm-up run as the median of `--runs`. The reference, timed the same way in the same run,
is `SELECT count(*) FROM message`: the cheapest possible pass over the year's messages, i.e. what
any statistic counted from the raw messages would at least cost. The ratio query / reference
shows what the rollup buys. The figure printed last is the slowest dashboard query against the
goal (each under 200 ms); the exit status is 1 when it is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, date, datetime

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from bench.pg import PG_ADMIN_URL, database_url
from bench.targeting import _median_ms
from gateway.seed import seed
from gateway.seed_year import seed_year
from gateway.stats import report, rollup
from gateway.stats.report import Filters
from gateway.storage.db import make_engine, session_factory
from gateway.storage.migrate import upgrade
from gateway.storage.models import Role, User

PG_DB = "burgernet_bench_stats"
PARTICIPANTS = 1_600_000
START = date(2025, 11, 24)  # the year: 2025-11-24 … 2026-11-23
END = date(2026, 11, 23)
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
GOAL_MS = 200.0


def _counts(engine: Engine) -> tuple[int, int] | None:
    try:
        with engine.connect() as conn:
            return (
                conn.execute(text("SELECT count(*) FROM participant")).scalar_one(),
                conn.execute(text("SELECT count(*) FROM action")).scalar_one(),
            )
    except Exception:
        return None


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare(actions: int, messages: int, reseed: bool) -> Engine:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    url = database_url(PG_DB)
    counts = None
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": PG_DB}).first()
        if exists and not reseed:
            engine = make_engine(url)
            counts = _counts(engine)
            if counts == (PARTICIPANTS, actions):
                upgrade(url)
                _log(f"postgresql: reusing {PG_DB} ({PARTICIPANTS:,} participants, {actions:,} actions)")
                admin.dispose()
                return engine
            engine.dispose()
        if counts != (PARTICIPANTS, 0):  # an interrupted year on a whole population keeps the population
            conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{PG_DB}"'))
    admin.dispose()
    upgrade(url)
    engine = make_engine(url)
    t0 = t1 = time.perf_counter()
    if counts != (PARTICIPANTS, 0):
        seed(engine, PARTICIPANTS, now=NOW)
        t1 = time.perf_counter()
        _log(f"seeded {PARTICIPANTS:,} participants in {t1 - t0:.1f} s")
    else:
        _log(f"postgresql: reusing the {PARTICIPANTS:,} participants of {PG_DB}")
    year = seed_year(
        engine,
        start=START,
        actions=actions,
        messages=messages,
        progress=lambda m: _log(f"  {time.perf_counter() - t1:6.1f} s  {m}"),
    )
    t2 = time.perf_counter()
    _log(
        f"seeded a year: {year.actions:,} actions, {year.messages:,} messages, {year.tips:,} tips in {t2 - t1:.1f} s"
    )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    t3 = time.perf_counter()
    done = rollup.roll_up_settled(session_factory(engine), NOW, 48)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE action_reach"))
        conn.execute(text("VACUUM ANALYZE reach_rollup"))
    _log(
        f"VACUUM ANALYZE {t3 - t2:.1f} s; rolled up {done:,} settled actions in {time.perf_counter() - t3:.1f} s"
    )
    return engine


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--actions", type=int, default=8_400)
    ap.add_argument("--messages", type=int, default=23_000_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--reseed", action="store_true")
    args = ap.parse_args(argv)

    engine = prepare(args.actions, args.messages, args.reseed)
    sessions = session_factory(engine)
    # What the housekeeping job `stats-rollup` does every STATS_ROLLUP_SECONDS.
    t = time.perf_counter()
    with sessions() as s:
        rollup.rebuild_signups(s, NOW)
        s.commit()
    _log(f"rebuilt the sign-up rollup in {time.perf_counter() - t:.1f} s")
    with sessions() as s:
        n_messages = s.execute(text("SELECT count(*) FROM message")).scalar_one()
    centralist = User(role=Role.centralist, centralist_id=1)
    utrecht = Filters(START, END, municipality="GM0344")
    year = Filters(START, END)
    region = Filters(START, END, region="Midden-Nederland")
    recent = Filters(date(2026, 11, 1), END, municipality="GM0344")
    today = END
    queries = {
        "summary, national": lambda s: report.summary(s, year, today),
        "summary, Utrecht": lambda s: report.summary(s, utrecht, today),
        "summary, region Midden-Nederland": lambda s: report.summary(s, region, today),
        "summary, Utrecht, one month": lambda s: report.summary(s, recent, today),
        "by-municipality, national": lambda s: report.by_municipality(s, centralist, year, today),
        "by-municipality, region": lambda s: report.by_municipality(s, centralist, region, today),
        "by-type, national": lambda s: report.by_type(s, year, today),
        "by-type, Utrecht": lambda s: report.by_type(s, utrecht, today),
        "signups by month, national": lambda s: report.signups(s, year, "month", today),
        "signups by week, Utrecht": lambda s: report.signups(s, utrecht, "week", today),
    }

    def run(fn):
        def once():
            with Session(engine) as s:
                fn(s)

        return once

    reference = _median_ms(
        run(lambda s: s.execute(text("SELECT count(*) FROM message")).scalar_one()), args.runs
    )
    print(f"\nyear of national data: {n_messages:,} messages; median of {args.runs} runs after a warm-up\n")
    print(f"{'query':<36} {'ms':>8} {'x reference':>12}")
    print(f"{'reference: SELECT count(*) FROM message':<36} {reference:8.1f} {1:12.2f}")
    worst_name, worst = "", 0.0
    for name, fn in queries.items():
        ms = _median_ms(run(fn), args.runs)
        print(f"{name:<36} {ms:8.1f} {ms / reference:12.3f}")
        if ms > worst:
            worst_name, worst = name, ms
    ok = worst < GOAL_MS
    print(
        f"\nslowest dashboard query: {worst_name} {worst:.1f} ms (goal < {GOAL_MS:.0f} ms, "
        f"{worst / reference:.3f}x count(*) FROM message): {'met' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
