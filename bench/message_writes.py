"""Status writes on `message`: the SMS worker's claim and outcome statements, HOT against non-HOT.

    .venv/bin/python -m bench.message_writes            # 100,000 messages, batches of 500
    .venv/bin/python -m bench.message_writes -n 20000

Runs `gateway.sms.store.claim_sms` and `write_batch` (outcome with its receipt folded in, as
at full speed) over N queued messages of one bulletin, twice in one run on the same database:
(ref) the schema as it was before session 5 — the open-message index `(status, claimed_at)` and
full pages — and (now) the schema as migrated (no status index, `fillfactor` 30). Prints the
PostgreSQL backends' CPU for each phase, the share of HOT updates, and the ratio now/ref.
Uses the database `burgernet_bench_writes` (recreated each run).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from bench.pg import fresh_database  # noqa: E402
from bench.sms import draft_action, pg_backends  # noqa: E402
from gateway.sms.store import Batch, Submitted, claim_sms, write_batch  # noqa: E402
from gateway.sms.worker import _judge_stat  # noqa: E402
from gateway.storage.db import make_engine, session_factory  # noqa: E402
from gateway.storage.models import MESSAGE_FILLFACTOR, Bulletin, BulletinKind, MessageStatus  # noqa: E402

PG_DB = "burgernet_bench_writes"
BATCH = 500
WORKER = "bench-writes"
OLD_INDEX = ("CREATE INDEX ix_message_open ON message (status, claimed_at) "
             "WHERE status IN ('queued', 'sending')")


def backend_cpu() -> float:
    return sum(pg_backends(PG_DB).values())


def update_counts(engine) -> tuple[int, int]:
    """(updates, HOT updates) of `message` so far. The pool's backends are closed first: a backend
    hands its counts to the shared statistics when it ends (or idles a while)."""
    engine.dispose()
    with engine.connect() as c:
        return tuple(c.execute(text(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'message'")).one())


def one_run(sessions, engine, n: int) -> dict[str, float]:
    """Create n queued messages, claim them and write their outcomes in batches; CPU per phase."""
    action_id = draft_action(sessions, "Schrijfproef.")
    with sessions() as s, s.begin():
        bulletin = Bulletin(action_id=action_id, kind=BulletinKind.alert, sms_text="Burgernet schrijfproef.",
                            spoken_text="-", fanned_out_at=datetime.now(timezone.utc))
        s.add(bulletin)
        s.flush()
        s.execute(text("""
            INSERT INTO message (bulletin_id, action_id, phone, channel, status, attempts, created_at, enqueued_at)
            SELECT :b, :a, '+316' || (20000000 + i), 'sms', 'queued', 0, now(), now()
              FROM generate_series(1, :n) AS i"""), {"b": bulletin.id, "a": action_id, "n": n})
        ids = list(s.scalars(text("SELECT id FROM message WHERE bulletin_id = :b ORDER BY id"), {"b": bulletin.id}))
    with engine.begin() as c:
        c.execute(text("ANALYZE message"))
    upd0, hot0 = update_counts(engine)
    start = backend_cpu()
    claimed = []
    for i in range(0, n, BATCH):
        claimed += claim_sms(sessions, ids[i : i + BATCH], WORKER)
    after_claim = backend_cpu()
    now = datetime.now(timezone.utc)
    for i in range(0, len(claimed), BATCH):
        batch = Batch()
        for item in claimed[i : i + BATCH]:
            batch.add_submitted(Submitted(item.message_id, "sim", "bench", (f"{item.message_id:016x}",), now,
                                          MessageStatus.delivered, None, now))
        write_batch(sessions, batch, WORKER, _judge_stat)
    after_outcome = backend_cpu()
    upd1, hot1 = update_counts(engine)
    return {"claim": after_claim - start, "outcome": after_outcome - after_claim,
            "hot": (hot1 - hot0) / max(1, upd1 - upd0), "claimed": len(claimed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100_000)
    args = parser.parse_args()
    engine = make_engine(fresh_database(PG_DB))
    sessions = session_factory(engine)
    results = {}
    for label in ("ref", "now"):
        with engine.begin() as c:
            c.execute(text("TRUNCATE message CASCADE"))
            if label == "ref":
                c.execute(text(OLD_INDEX))
                c.execute(text("ALTER TABLE message SET (fillfactor = 100)"))
            else:
                c.execute(text("DROP INDEX IF EXISTS ix_message_open"))
                c.execute(text(f"ALTER TABLE message SET (fillfactor = {MESSAGE_FILLFACTOR})"))
        r = results[label] = one_run(sessions, engine, args.n)
        print(f"({label}) {'status index, full pages' if label == 'ref' else 'as migrated'}: "
              f"claim {r['claim']:.2f} s, outcome {r['outcome']:.2f} s of PostgreSQL CPU for {r['claimed']:,} "
              f"messages; {100 * r['hot']:.0f}% of the updates HOT", flush=True)
    engine.dispose()
    ref, now = results["ref"], results["now"]
    print(f"message status writes n={args.n:,}: claim + outcome {ref['claim'] + ref['outcome']:.2f} s → "
          f"{now['claim'] + now['outcome']:.2f} s of PostgreSQL CPU: ratio now/ref "
          f"{(now['claim'] + now['outcome']) / (ref['claim'] + ref['outcome']):.2f}")


if __name__ == "__main__":
    main()
