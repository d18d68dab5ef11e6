"""A year of national Burgernet activity on top of a seeded population (gateway.seed), for the
statistics' benchmark and for demos: about 8,400 actions and 23 million messages, with tips and
outcomes at the rates the Burgernet programme reports, as listed below.

- Actions: ~700 a month, launched through the year (more by day than by night) in a municipality
  chosen by population; types weighted as in practice; open 20–60 minutes, 3% expire without an
  outcome after two hours. About a quarter also reach a neighbouring municipality.
- Recipients per action: log-normal, from a few dozen to tens of thousands (capped by the
  municipality's participants), scaled so that alerts, updates (15% of actions) and closing
  messages (to every number reached) add up to `messages`.
- Messages: SMS 92% delivered, 5% submitted without receipt, 3% failed; calls 68% answered.
- Tips: 48% of actions get at least one (1 + geometric, mean 2) while open; 5% get one after the
  close. Direct success 14% for missing persons, 8–12% for the others; indirect ~10%; a direct
  success always had a tip.

PostgreSQL only, and fast: actions, bulletins and tips are written with COPY; messages are made
by the server itself (`INSERT … SELECT` over a ranked participant table), so 23 million rows never
pass through Python. When the message table is empty its indexes and constraints are dropped
during the load and rebuilt (and the foreign keys validated) afterwards.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import cast

from sqlalchemy import Engine, Table, UniqueConstraint, text

from gateway.seed import CITIES
from gateway.storage.models import MESSAGE_FILLFACTOR, Message

_MESSAGE = cast(Table, Message.__table__)

TYPES = {  # action type: (share of actions, direct success rate)
    "missing_person": (0.20, 0.14),
    "burglary": (0.25, 0.09),
    "robbery": (0.12, 0.12),
    "hit_and_run": (0.10, 0.10),
    "shop_theft": (0.18, 0.08),
    "other": (0.15, 0.08),
}
TIP_SHARE, LATE_TIP_SHARE, INDIRECT, EXPIRED, UPDATE_SHARE, SECOND_MUNICIPALITY = (
    0.48,
    0.05,
    0.10,
    0.03,
    0.15,
    0.25,
)
OUTCOME_DETAIL = {
    "missing_person": "person_found",
    "hit_and_run": "vehicle_found",
    "shop_theft": "goods_found",
}
# Launches per hour of the day (relative).
HOURS = (2, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 8, 7, 6, 4, 3)


@dataclass(frozen=True, slots=True)
class YearSummary:
    actions: int
    bulletins: int
    messages: int
    tips: int


def seed_year(
    engine: Engine,
    *,
    start: date = date(2025, 11, 24),
    actions: int = 8_400,
    messages: int = 23_000_000,
    rng_seed: int = 2026,
    progress: Callable[[str], None] | None = None,
) -> YearSummary:
    """Add a year (from `start`) of closed actions with their messages and tips."""
    if engine.dialect.name != "postgresql":
        raise ValueError("seed_year writes with PostgreSQL's COPY and INSERT … SELECT; use PostgreSQL")
    say = progress or (lambda _: None)
    rng = random.Random(f"burgernet-year:{rng_seed}")
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL synchronous_commit = off"))
        conn.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
        conn.execute(text("SET LOCAL work_mem = '64MB'"))
        munis = {
            cbs: (mid, size)
            for cbs, mid, size in conn.execute(
                text(
                    "SELECT m.cbs_code, m.id, count(p.id) FROM municipality m JOIN participant p ON p.municipality_id = m.id "
                    "WHERE p.unsubscribed_at IS NULL GROUP BY m.cbs_code, m.id"
                )
            )
        }
        cities = [c for c in CITIES if c.cbs in munis]
        if not cities:
            raise ValueError("no participants: run gateway.seed.seed first")
        centralists = _centralists(conn)
        first_action = (conn.execute(text("SELECT coalesce(max(id), 0) FROM action")).scalar_one()) + 1
        first_bulletin = (conn.execute(text("SELECT coalesce(max(id), 0) FROM bulletin")).scalar_one()) + 1
        plan = _plan(rng, cities, munis, centralists, start, actions, messages, first_action, first_bulletin)
        driver = conn.connection.driver_connection
        assert driver is not None  # a live connection
        cur = driver.cursor()
        _copy(
            cur,
            "action",
            (
                "id",
                "type",
                "description",
                "lat",
                "lon",
                "radius_m",
                "send_sms",
                "send_voice",
                "centralist_id",
                "action_code",
                "status",
                "created_at",
                "launched_at",
                "expires_at",
                "closed_at",
                "expired",
                "outcome",
                "outcome_detail",
            ),
            plan.actions,
        )
        _copy(
            cur,
            "bulletin",
            (
                "id",
                "action_id",
                "kind",
                "seq",
                "sms_text",
                "spoken_text",
                "created_at",
                "published_at",
                "fanned_out_at",
                "settled_at",
            ),
            [(*b, b[-1], b[-1], b[-1]) for b in plan.bulletins],
        )  # complete, published, and its messages final
        _copy(
            cur,
            "tip",
            (
                "channel",
                "received_at",
                "ended_at",
                "caller_number",
                "action_id",
                "matched_by",
                "routed_to",
                "dial_status",
                "talk_seconds",
                "useful",
                "led_to_success",
            ),
            plan.tips,
        )
        for table in ("action", "bulletin"):
            conn.execute(
                text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}")
            )
        say(
            f"{len(plan.actions):,} actions, {len(plan.bulletins):,} bulletins, {len(plan.tips):,} tips written"
        )
        bulk = conn.execute(text("SELECT NOT EXISTS (SELECT 1 FROM message)")).scalar_one()
        if bulk:
            _drop_message_indexes(conn)
        # A year's messages are final and never written again: full pages, not the room live
        # messages keep for their status writes (models.MESSAGE_FILLFACTOR).
        conn.execute(text("ALTER TABLE message SET (fillfactor = 100)"))
        written = _messages(conn, cur, plan.reach, say)
        conn.execute(text(f"ALTER TABLE message SET (fillfactor = {MESSAGE_FILLFACTOR})"))
        if bulk:
            say("rebuilding the message indexes and constraints")
            _restore_message_indexes(conn)
    return YearSummary(len(plan.actions), len(plan.bulletins), written, len(plan.tips))


def _centralists(conn) -> list[int]:
    ids = [r for (r,) in conn.execute(text("SELECT id FROM centralist ORDER BY id"))]
    if not ids:
        for n in range(10):
            conn.execute(
                text(
                    "INSERT INTO centralist (name, meldkamer, dial_string, created_at) "
                    "VALUES (:n, 'Landelijk', :d, now())"
                ),
                {"n": f"Centralist {n + 1}", "d": f"PJSIP/40{n:02d}@mk"},
            )
        ids = [r for (r,) in conn.execute(text("SELECT id FROM centralist ORDER BY id"))]
    return ids


@dataclass
class _Plan:
    actions: list
    bulletins: list
    tips: list
    # (action_id, alert, update or None, closing bulletin, municipality_id, count, offset, launched, closed)
    reach: list


def _stamp(dt: datetime) -> str:
    return dt.isoformat(sep=" ")


def _plan(
    rng, cities, munis, centralists, start, n_actions, n_messages, first_action, first_bulletin
) -> _Plan:
    weights = [c.pop_k for c in cities]
    types, type_weights = list(TYPES), [share for share, _ in TYPES.values()]
    # Recipients: log-normal draws, scaled to the message target (alert + update + closing ≈ 2.05×).
    draws = [rng.lognormvariate(6.6, 1.1) for _ in range(n_actions)]
    scale = n_messages / (sum(draws) * (1 + UPDATE_SHARE + 0.9))
    actions, bulletins, tips, reach = [], [], [], []
    offsets: dict[int, int] = {}
    bid = first_bulletin
    for i in range(n_actions):
        aid = first_action + i
        city = rng.choices(cities, weights)[0]
        kind = rng.choices(types, type_weights)[0]
        day = start + timedelta(days=rng.randrange(365))
        hour = rng.choices(range(24), HOURS)[0]
        launched = datetime(
            day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60), tzinfo=UTC
        )
        expired = rng.random() < EXPIRED
        closed = launched + timedelta(minutes=120 if expired else rng.randrange(20, 61))
        has_tip = rng.random() < TIP_SHARE
        outcome = detail = None
        if not expired:
            r = rng.random()
            direct = TYPES[kind][1] / TIP_SHARE
            if has_tip and r < direct:
                outcome, detail = "direct", OUTCOME_DETAIL.get(kind, "arrest")
            elif r > 1 - INDIRECT:
                outcome, detail = "indirect", OUTCOME_DETAIL.get(kind, "arrest")
            else:
                outcome = "none"
        lat, lon = city.lat + rng.gauss(0, 0.01), city.lon + rng.gauss(0, 0.015)
        sms, voice = (True, True) if rng.random() < 0.8 else (True, False)
        actions.append(
            (
                aid,
                kind,
                f"Jaaroverzicht actie {aid}",
                round(lat, 6),
                round(lon, 6),
                rng.choice((1000, 2000, 3000, 5000)),
                sms,
                voice,
                rng.choice(centralists),
                f"{aid % 10000:04d}",
                "closed",
                _stamp(launched),
                _stamp(launched),
                _stamp(launched + timedelta(hours=2)),
                _stamp(closed),
                expired,
                outcome,
                detail,
            )
        )
        alert, update, closing = bid, (bid + 1 if rng.random() < UPDATE_SHARE else None), None
        bulletins.append((alert, aid, "alert", 0, "alert", "alert", _stamp(launched)))
        bid += 1
        if update:
            bulletins.append(
                (update, aid, "update", 1, "update", "update", _stamp(launched + timedelta(minutes=10)))
            )
            bid += 1
        closing = bid
        bulletins.append((closing, aid, "closing", 0, "closing", "closing", _stamp(closed)))
        bid += 1
        # Who: this municipality, and for some actions a neighbouring one.
        targets = [(city.cbs, 1.0)]
        if rng.random() < SECOND_MUNICIPALITY:
            near = min(
                (c for c in cities if c.cbs != city.cbs),
                key=lambda c: (c.lat - city.lat) ** 2 + (c.lon - city.lon) ** 2,
                default=None,
            )
            if near is not None:
                targets = [(city.cbs, 0.8), (near.cbs, 0.2)]
        total = max(20, int(draws[i] * scale))
        for cbs, share in targets:
            mid, size = munis[cbs]
            count = min(size, max(1, int(total * share)))
            offset = offsets.get(mid, rng.randrange(size))
            offsets[mid] = (offset + count) % size
            reach.append((aid, alert, update, closing, mid, count, offset, size, launched, closed))
        if has_tip:
            for _ in range(1 + min(8, int(rng.expovariate(1.0)))):
                at = launched + timedelta(
                    seconds=rng.randrange(max(60, int((closed - launched).total_seconds())))
                )
                tips.append(_tip(rng, aid, at, outcome == "direct"))
        if rng.random() < LATE_TIP_SHARE:
            tips.append(_tip(rng, aid, closed + timedelta(minutes=rng.randrange(1, 180)), False))
    return _Plan(actions, bulletins, tips, reach)


def _tip(rng, action_id: int, at: datetime, success: bool) -> tuple:
    talk = rng.randrange(20, 240)
    useful = success or rng.random() < 0.3
    return (
        "call",
        _stamp(at),
        _stamp(at + timedelta(seconds=talk + 10)),
        None,
        action_id,
        "caller_id",
        "PJSIP/4000@mk",
        "ANSWER",
        talk,
        useful,
        success and useful,
    )


def _copy(cur, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    def value(v) -> str:
        if v is None:
            return r"\N"
        if isinstance(v, bool):
            return "t" if v else "f"
        return str(v)

    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for start in range(0, len(rows), 10_000):
            copy.write(
                "".join("\t".join(value(v) for v in row) + "\n" for row in rows[start : start + 10_000])
            )


# Status by a hash in 0..999 of (participant, action): the shares in the module docstring.
_STATUS_SQL = """
    CASE WHEN ch = 'sms' THEN
        CASE WHEN h < 920 THEN 'delivered' WHEN h < 970 THEN 'submitted' ELSE 'failed' END
    ELSE CASE WHEN h < 680 THEN 'answered' ELSE 'failed' END END
"""


def _messages(conn, cur, reach: list, say) -> int:
    """Alert, update and closing messages, made by the server from a ranked participant table."""
    conn.execute(
        text("""
        CREATE TEMP TABLE ranked ON COMMIT DROP AS
        SELECT municipality_id, row_number() OVER (PARTITION BY municipality_id ORDER BY (id * 2654435761) % 4294967291) - 1 AS rn,
               id, phone
        FROM (SELECT DISTINCT ON (municipality_id, phone) municipality_id, id, phone FROM participant
              WHERE unsubscribed_at IS NULL ORDER BY municipality_id, phone, id) p
    """)
    )
    conn.execute(text("CREATE INDEX ON ranked (municipality_id, rn)"))
    conn.execute(
        text(
            "CREATE TEMP TABLE reach_plan (action_id int, alert int, upd int, closing int, municipality_id int, "
            "n int, off int, size int, launched timestamptz, closed timestamptz) ON COMMIT DROP"
        )
    )
    _copy(
        cur,
        "reach_plan",
        ("action_id", "alert", "upd", "closing", "municipality_id", "n", "off", "size", "launched", "closed"),
        [(*r[:8], _stamp(r[8]), _stamp(r[9])) for r in reach],
    )
    conn.execute(text("ANALYZE ranked; ANALYZE reach_plan"))
    # One row per recipient: the n participants from `off` on, wrapping round the municipality
    # (two plain range joins, each an index range scan; an OR of both would scan the municipality).
    select = """
        SELECT rp.action_id, rp.alert, rp.upd, rp.closing, rp.launched, rp.closed, r.id AS participant_id, r.phone,
               CASE WHEN (r.id * 7 + rp.action_id) % 100 < 20 THEN 'voice' ELSE 'sms' END AS ch,
               ((r.id * 2654435761 + rp.action_id * 40503) % 1000) AS h
        FROM reach_plan rp JOIN ranked r ON r.municipality_id = rp.municipality_id AND r.rn >= {lo} AND r.rn < {hi}
    """
    conn.execute(
        text(
            "CREATE TEMP TABLE recipient ON COMMIT DROP AS "
            + select.format(lo="rp.off", hi="rp.off + rp.n")
            + " UNION ALL "
            + select.format(lo="0", hi="rp.off + rp.n - rp.size")
        )
    )
    say("recipients chosen")
    written = 0
    columns = "bulletin_id, action_id, phone, participant_id, channel, status, attempts, created_at, enqueued_at, sent_at, final_at"
    for label, sql in (
        (
            "alert",
            f"""SELECT alert, action_id, phone, participant_id, ch, {_STATUS_SQL}, 1,
                             launched, launched, launched + interval '1 minute', launched + interval '2 minutes'
                      FROM recipient""",
        ),
        (
            "update",
            f"""SELECT upd, action_id, phone, participant_id, ch, {_STATUS_SQL.replace("h <", "((h + 331) % 1000) <")}, 1,
                              launched + interval '10 minutes', launched + interval '10 minutes',
                              launched + interval '11 minutes', launched + interval '12 minutes'
                       FROM recipient WHERE upd IS NOT NULL""",
        ),
        # RULE (as in lifecycle.close): the closing message goes to every number reached by the alert.
        (
            "closing",
            f"""SELECT closing, action_id, phone, participant_id, ch, {_STATUS_SQL.replace("h <", "((h + 617) % 1000) <")}, 1,
                               closed, closed, closed + interval '1 minute', closed + interval '2 minutes'
                        FROM recipient WHERE (ch = 'sms' AND h < 970) OR (ch = 'voice' AND h < 680)""",
        ),
    ):
        n = conn.execute(text(f"INSERT INTO message ({columns}) {sql}")).rowcount
        written += n
        say(f"{n:,} {label} messages")
    return written


def _message_constraints() -> list[tuple[str, str]]:
    """(name, definition) of every constraint on `message` but its primary key."""
    table = _MESSAGE
    out = [
        (str(c.name), f"UNIQUE ({', '.join(col.name for col in c.columns)})")
        for c in table.constraints
        if isinstance(c, UniqueConstraint)
    ]
    for c in table.foreign_key_constraints:
        columns = ", ".join(element.parent.name for element in c.elements)
        referred = ", ".join(element.column.name for element in c.elements)
        out.append(
            (
                str(c.name),
                f"FOREIGN KEY ({columns}) REFERENCES {c.referred_table.name} ({referred})"
                + (f" ON DELETE {c.ondelete}" if c.ondelete else ""),
            )
        )
    return out


def _drop_message_indexes(conn) -> None:
    for name, _ in _message_constraints():
        conn.execute(text(f"ALTER TABLE message DROP CONSTRAINT {name}"))
    for index in _MESSAGE.indexes:
        conn.execute(text(f"DROP INDEX {index.name}"))


def _restore_message_indexes(conn) -> None:
    for name, definition in _message_constraints():
        conn.execute(text(f"ALTER TABLE message ADD CONSTRAINT {name} {definition}"))
    for index in _MESSAGE.indexes:
        index.create(conn)
