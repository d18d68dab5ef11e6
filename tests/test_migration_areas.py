"""Migration 0013_areas: an address's single window becomes the same window every day, and back."""

from sqlalchemy import text

from gateway.actions.wording import template_problem
from gateway.storage.db import make_engine
from gateway.storage.migrate import downgrade, upgrade
from gateway.storage.models import ActionType

_ADDRESS = (
    "INSERT INTO address (id, participant_id, country, postcode, house_number, lat, lon, tile, channel, "
    "window_start, window_end) VALUES ({id}, 1, 'NL', '3511 AB', '1', 52.09, 5.12, 0, 'sms', {start}, {end})"
)


def test_existing_windows_become_every_day_and_come_back(empty_db):
    upgrade(empty_db, "0011_smpp")
    engine = make_engine(empty_db)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO municipality (id, cbs_code, name, region, created_at) VALUES (1, 'GM0344', 'U', 'R', CURRENT_TIMESTAMP)"))  # fmt: skip
        conn.execute(text("INSERT INTO participant (id, municipality_id, name, phone, language, created_at, updated_at) VALUES (1, 1, 'P', '+31611111111', 'nl', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))  # fmt: skip
        rows = [
            (1, 1320, 420),
            (2, 420, 1380),
            (3, "NULL", "NULL"),
            (4, 0, 1440),
            (5, 450, 1410),
            (6, 1439, 1),
        ]
        for id_, start, end in rows:
            conn.execute(text(_ADDRESS.format(id=id_, start=start, end=end)))
    engine.dispose()
    upgrade(empty_db, "0013_areas")
    engine = make_engine(empty_db)
    with engine.begin() as conn:
        got = conn.execute(text("SELECT id, windows FROM address ORDER BY id")).all()
        assert got == [
            (1, "22:00-07:00"),
            (2, "07:00-23:00"),
            (3, None),
            (4, "00:00-24:00"),
            (5, "07:30-23:30"),  # half hours: whole-number division, not rounding
            (6, "23:59-00:01"),
        ]
        # A weekday window the old columns cannot hold becomes "always" on the way down.
        conn.execute(text("UPDATE address SET windows = 'mo-fr 08:00-17:00' WHERE id = 2"))
    engine.dispose()
    downgrade(empty_db, "0011_smpp")
    engine = make_engine(empty_db)
    with engine.connect() as conn:
        back = conn.execute(text("SELECT id, window_start, window_end FROM address ORDER BY id")).all()
    engine.dispose()
    assert back == [
        (1, 1320, 420),
        (2, None, None),
        (3, None, None),
        (4, 0, 1440),
        (5, 450, 1410),
        (6, 1439, 1),
    ]


def test_the_migration_ships_a_template_per_action_type(empty_db):
    upgrade(empty_db)
    engine = make_engine(empty_db)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT action_type, body FROM text_template")).all()
    engine.dispose()
    assert sorted(t for t, _ in rows) == sorted(t.value for t in ActionType)
    assert all(template_problem(body) is None for _, body in rows)
