"""Writes on `message`: the launch's insert and the SMS worker's claim and outcome, before and after.

    .venv/bin/python -m bench.message_writes            # 100,000 messages, batches of 500
    .venv/bin/python -m bench.message_writes -n 20000

Inserts N messages of one bulletin to N participants as a launch does
(`gateway.actions.lifecycle._insert_messages`), then runs `gateway.sms.store.claim_sms` and
`write_batch` (outcome with its receipt folded in, as at full speed) over them; twice in one run
on the same database: (ref) the schema as it was before sessions 5 to 7 — the open-message index
`(status, claimed_at)`, full pages, and foreign keys to the bulletin, the action and the
participant — and (now) the schema as migrated (no status index, `fillfactor` 30, one foreign
key `(bulletin_id, action_id)`). Prints the PostgreSQL backends' CPU for each phase, the share of
HOT updates, and the ratios now/ref. Uses the database `burgernet_bench_writes` (recreated each run).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from bench.pg import fresh_database  # noqa: E402
from bench.sms import draft_action, pg_backends, seed_participants  # noqa: E402
from gateway.actions.lifecycle import _insert_messages  # noqa: E402
from gateway.sms.receipts import judge_stat  # noqa: E402
from gateway.sms.store import Batch, Submitted, claim_sms, write_batch  # noqa: E402
from gateway.storage.db import make_engine, session_factory  # noqa: E402
from gateway.storage.models import MESSAGE_FILLFACTOR, Bulletin, BulletinKind, MessageStatus  # noqa: E402

PG_DB = "burgernet_bench_writes"
BATCH = 500
WORKER = "bench-writes"
# From the migrated schema to the one before, and back.
BEFORE = [
    "CREATE INDEX ix_message_open ON message (status, claimed_at) WHERE status IN ('queued', 'sending')",
    "ALTER TABLE message SET (fillfactor = 100)",
    "ALTER TABLE message DROP CONSTRAINT fk_message_bulletin",
    "ALTER TABLE message ADD CONSTRAINT fk_message_bulletin_id_bulletin FOREIGN KEY (bulletin_id) REFERENCES bulletin (id)",
    "ALTER TABLE message ADD CONSTRAINT fk_message_action_id_action FOREIGN KEY (action_id) REFERENCES action (id)",
    "ALTER TABLE message ADD CONSTRAINT fk_message_participant_id_participant FOREIGN KEY (participant_id) "
    "REFERENCES participant (id) ON DELETE SET NULL",
]
AS_MIGRATED = [
    "DROP INDEX ix_message_open",
    f"ALTER TABLE message SET (fillfactor = {MESSAGE_FILLFACTOR})",
    "ALTER TABLE message DROP CONSTRAINT fk_message_bulletin_id_bulletin",
    "ALTER TABLE message DROP CONSTRAINT fk_message_action_id_action",
    "ALTER TABLE message ADD CONSTRAINT fk_message_bulletin FOREIGN KEY (bulletin_id, action_id) "
    "REFERENCES bulletin (id, action_id)",
    "ALTER TABLE message DROP CONSTRAINT fk_message_participant_id_participant",
]


def backend_cpu() -> float:
    return sum(pg_backends(PG_DB).values())


def update_counts(engine) -> tuple[int, int]:
    """(updates, HOT updates) of `message` so far. The pool's backends are closed first: a backend
    hands its counts to the shared statistics when it ends (or idles a while)."""
    engine.dispose()
    with engine.connect() as c:
        return tuple(
            c.execute(
                text("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'message'")
            ).one()
        )


def one_run(sessions, engine, recipients: list[tuple[str, int, str]]) -> dict[str, float]:
    """Create a queued message per recipient, claim them and write their outcomes in batches;
    CPU per phase."""
    action_id = draft_action(sessions, "Schrijfproef.")
    start = backend_cpu()
    with sessions() as s, s.begin():
        bulletin = Bulletin(
            action_id=action_id,
            kind=BulletinKind.alert,
            sms_text="Burgernet schrijfproef.",
            spoken_text="-",
            fanned_out_at=datetime.now(UTC),
        )
        s.add(bulletin)
        s.flush()
        ids = _insert_messages(s, bulletin, recipients, datetime.now(UTC)).ids_by_channel["sms"]
    inserted = backend_cpu() - start
    n = len(ids)
    with engine.begin() as c:
        c.execute(text("ANALYZE message"))
    upd0, hot0 = update_counts(engine)
    start = backend_cpu()
    claimed = []
    for i in range(0, n, BATCH):
        claimed += claim_sms(sessions, ids[i : i + BATCH], WORKER)
    after_claim = backend_cpu()
    now = datetime.now(UTC)
    for i in range(0, len(claimed), BATCH):
        batch = Batch()
        for item in claimed[i : i + BATCH]:
            batch.add_submitted(
                Submitted(
                    item.message_id,
                    "sim",
                    "bench",
                    (f"{item.message_id:016x}",),
                    now,
                    MessageStatus.delivered,
                    None,
                    now,
                )
            )
        write_batch(sessions, batch, WORKER, judge_stat)
    after_outcome = backend_cpu()
    upd1, hot1 = update_counts(engine)
    return {
        "insert": inserted,
        "claim": after_claim - start,
        "outcome": after_outcome - after_claim,
        "hot": (hot1 - hot0) / max(1, upd1 - upd0),
        "claimed": len(claimed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=100_000)
    args = parser.parse_args()
    engine = make_engine(fresh_database(PG_DB))
    sessions = session_factory(engine)
    seed_participants(sessions, args.n)
    with sessions() as s:
        recipients = [
            (phone, pid, "sms") for phone, pid in s.execute(text("SELECT phone, id FROM participant"))
        ]
    results = {}
    for label, schema in (("ref", BEFORE), ("now", AS_MIGRATED)):
        with engine.begin() as c:
            c.execute(text("TRUNCATE message CASCADE"))
            for statement in schema:
                c.execute(text(statement))
        r = results[label] = one_run(sessions, engine, recipients)
        print(
            f"({label}) {'status index, full pages, three foreign keys' if label == 'ref' else 'as migrated'}: "
            f"insert {r['insert']:.2f} s, claim {r['claim']:.2f} s, outcome {r['outcome']:.2f} s of PostgreSQL "
            f"CPU for {r['claimed']:,} messages; {100 * r['hot']:.0f}% of the updates HOT",
            flush=True,
        )
    engine.dispose()
    ref, now = results["ref"], results["now"]
    writes = lambda r: r["claim"] + r["outcome"]  # noqa: E731
    print(
        f"message writes n={args.n:,}: insert {ref['insert']:.2f} s → {now['insert']:.2f} s (ratio now/ref "
        f"{now['insert'] / ref['insert']:.2f}); claim + outcome {writes(ref):.2f} s → {writes(now):.2f} s of "
        f"PostgreSQL CPU (ratio now/ref {writes(now) / writes(ref):.2f})"
    )


if __name__ == "__main__":
    main()
