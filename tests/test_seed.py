"""The synthetic population: shape, validity and determinism, on PostgreSQL and SQLite."""

from datetime import UTC, datetime

import phonenumbers
import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from gateway.seed import CITIES, seed
from gateway.storage.models import Address, Channel, Municipality, Participant
from gateway.targeting.geo import distance_m, tile_of

N = 2_000
NOW = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
UTRECHT = (52.0907, 5.1214)


def _scalar(engine, sql: str):
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


def test_population_has_the_promised_shape(engine):
    progress = []
    summary = seed(engine, N, now=NOW, progress=progress.append)

    assert progress[-1] == N
    assert summary.participants == N == _scalar(engine, "SELECT count(*) FROM participant")
    assert summary.addresses == _scalar(engine, "SELECT count(*) FROM address")
    assert summary.municipalities == len(CITIES) == _scalar(engine, "SELECT count(*) FROM municipality")
    assert 1.1 <= summary.addresses / summary.participants <= 1.3
    assert summary.shared_numbers == _scalar(
        engine, "SELECT count(*) FROM (SELECT phone FROM participant GROUP BY phone HAVING count(*) > 1) s"
    )
    assert summary.foreign_numbers == _scalar(
        engine, "SELECT count(DISTINCT phone) FROM participant WHERE phone NOT LIKE '+31%'"
    )
    assert summary.shared_numbers > 0 and summary.foreign_numbers > 0

    with Session(engine) as db:
        phones = db.scalars(select(Participant.phone)).all()
        for phone in phones:
            number = phonenumbers.parse(phone)
            assert phonenumbers.is_valid_number(number), phone
            assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == phone
        assert any(p.startswith("+32") for p in phones) or any(p.startswith("+49") for p in phones)

        rows = db.execute(
            select(
                Address.lat,
                Address.lon,
                Address.tile,
                Address.postcode,
                Address.channel,
                Address.windows,
            )
        ).all()
        assert all(tile == tile_of(lat, lon) for lat, lon, tile, *_ in rows)
        assert all(
            len(pc) == 7 and pc[:4].isdigit() and pc[4] == " " and pc[5:].isalpha() for *_, pc, _c, _w in rows
        )
        channels = [r.channel for r in rows]
        assert channels.count(Channel.voice) > 0.1 * len(rows)
        assert channels.count(Channel.sms) > 0.7 * len(rows)
        # Every-day windows (the seed predates weekdays), some crossing midnight (night shifts).
        assert any(r.windows is not None and r.windows > r.windows.split("-")[1] for r in rows)
        assert sum(r.windows is None for r in rows) > 0.6 * len(rows)

        # Landlines are voice-only; timestamps come back as aware UTC datetimes.
        landline = (
            select(Address.channel)
            .join(Participant)
            .where(Participant.phone.like("+31%"), ~Participant.phone.like("+316%"))
        )
        assert set(db.scalars(landline)) == {Channel.voice}
        person = db.scalars(select(Participant).where(Participant.unsubscribed_at.is_not(None))).first()
        assert person is not None and person.unsubscribed_at.tzinfo is not None
        assert person.created_at <= person.updated_at <= NOW
        assert db.scalar(select(func.count()).where(Participant.pause_from.is_not(None))) > 0


def test_seeding_is_deterministic_and_adds_up(engine):
    def first_phones():
        with engine.connect() as conn:
            return conn.scalars(select(Participant.phone).order_by(Participant.id).limit(20)).all()

    seed(engine, N, rng_seed=7, now=NOW)
    before = first_phones()
    with engine.begin() as conn:
        for table in (Address, Participant, Municipality):
            conn.execute(delete(table))
    first = seed(engine, N, rng_seed=7, now=NOW)
    assert first_phones() == before

    # Seeding again adds participants (with fresh numbers) but no municipalities; new rows get
    # ids after the seeded ones, also through the ORM (PostgreSQL sequences were moved on).
    again = seed(engine, N, rng_seed=7, now=NOW)
    assert _scalar(engine, "SELECT count(*) FROM municipality") == len(CITIES)
    assert _scalar(engine, "SELECT count(*) FROM participant") == 2 * N
    distinct = 2 * N - first.shared_numbers - again.shared_numbers  # no collisions across runs
    assert _scalar(engine, "SELECT count(DISTINCT phone) FROM participant") == distinct
    with Session(engine) as db, db.begin():
        muni = db.scalars(select(Municipality)).first()
        db.add(Participant(municipality_id=muni.id, name="Nieuw", phone="+31612345678"))
        db.flush()
        assert db.scalar(select(func.max(Participant.id))) == 2 * N + 1


def test_around_restricts_to_nearby_cities(engine):
    summary = seed(engine, N, around=(*UTRECHT, 12.0), now=NOW)
    near = {c.cbs for c in CITIES if distance_m(*UTRECHT, c.lat, c.lon) <= 12_000}
    assert {"GM0344", "GM0356", "GM0355", "GM0321", "GM0310", "GM0353", "GM0312"} <= near
    assert "GM0363" not in near
    with Session(engine) as db:
        assert set(db.scalars(select(Municipality.cbs_code))) == near
        assert summary.municipalities == len(near)
        coords = db.execute(select(Address.lat, Address.lon)).all()
    # Homes spread up to three standard deviations (~8 km for Utrecht) around each centre.
    assert max(distance_m(*UTRECHT, lat, lon) for lat, lon in coords) < 12_000 + 9_000
    assert len(coords) == summary.addresses


def test_around_with_no_city_is_an_error(engine):
    with pytest.raises(ValueError):
        seed(engine, 10, around=(60.0, 20.0, 10.0))
