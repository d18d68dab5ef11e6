"""The year generator: the product's rates come out, the statistics read its data, the schema stays whole."""

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import inspect, text

from gateway.seed import seed
from gateway.seed_year import seed_year
from gateway.stats import query, rollup
from gateway.stats.definitions import Area, Period

NOW = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)


def test_a_year_of_actions_at_the_products_rates(engine, sessions):
    if engine.dialect.name != "postgresql":
        with pytest.raises(ValueError, match="PostgreSQL"):
            seed_year(engine, actions=10, messages=1000)
        return
    seed(engine, 20_000, now=NOW)
    indexes_before = {i["name"] for i in inspect(engine).get_indexes("message")}
    summary = seed_year(engine, start=date(2025, 11, 24), actions=1_000, messages=400_000)
    assert summary.actions == 1_000
    assert 300_000 < summary.messages < 450_000  # capped by small municipalities, so at most the target
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM message")).scalar_one() == summary.messages
        # One message per number per bulletin: the rebuilt unique constraint holds (and exists).
        assert (
            conn.execute(
                text(
                    "SELECT count(*) FROM (SELECT 1 FROM message GROUP BY bulletin_id, phone HAVING count(*) > 1) d"
                )
            ).scalar_one()
            == 0
        )
    assert {i["name"] for i in inspect(engine).get_indexes("message")} == indexes_before
    assert {c["name"] for c in inspect(engine).get_unique_constraints("message")} == {
        "uq_message_bulletin_phone"
    }

    period = Period(date(2025, 11, 24), date(2026, 11, 23))
    with sessions() as s:
        counts, messages = query.summary_counts(s, period, Area(), None)
    assert counts.actions == counts.closed == 1_000
    assert 0.42 < counts.with_tip / counts.actions < 0.54  # ~48 %
    assert 0.07 < counts.direct / counts.closed < 0.16  # 8–15 %
    assert (
        0.88
        < messages.sms_delivered / (messages.sms_delivered + messages.sms_submitted + messages.sms_failed)
        < 0.96
    )

    # The rollup of every settled action gives the very same counts.
    assert rollup.roll_up_settled(sessions, NOW + timedelta(days=3), settle_hours=48) == 1_000
    with sessions() as s:
        assert query.summary_counts(s, period, Area(), None) == (counts, messages)


def test_sign_ups_grow_over_the_years(engine):
    """The population's sign-up dates make a trend: each recent year brings more than the one before."""
    seed(engine, 4_000, now=NOW)
    with engine.connect() as conn:
        years = [
            conn.execute(
                text("SELECT count(*) FROM participant WHERE created_at >= :a AND created_at < :b"),
                {"a": NOW - timedelta(days=365 * (k + 1)), "b": NOW - timedelta(days=365 * k)},
            ).scalar_one()
            for k in range(8)
        ]
    assert sum(years) >= 3_900  # all but those of the last few hours' rounding
    assert years[0] > years[3] > years[7] > 0  # ~15/8 of the mean last year, ~1/8 eight years ago
