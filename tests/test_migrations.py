"""Migrations: up from empty to head and back down, on PostgreSQL and SQLite; models match them."""

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError

from gateway.storage.db import make_engine, session_factory
from gateway.storage.migrate import downgrade, upgrade
from gateway.storage.models import (
    Action,
    ActionType,
    Base,
    Channel,
    Message,
    MessageStatus,
    Municipality,
    Participant,
    SmsPart,
)


def tables(url):
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_to_head_and_back_down(empty_db):
    assert tables(empty_db) == set()
    upgrade(empty_db)
    assert tables(empty_db) == set(Base.metadata.tables)
    downgrade(empty_db)
    assert tables(empty_db) == set()
    upgrade(empty_db)  # and up again: the downgrade left nothing behind that blocks it
    assert tables(empty_db) == set(Base.metadata.tables)


def test_the_models_match_the_migrations(empty_db):
    """A model change without a migration fails here (run `alembic revision --autogenerate`)."""
    upgrade(empty_db)
    engine = make_engine(empty_db)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def _action_with_a_submitted_sms(sessions) -> tuple[int, int]:
    """An action, its alert, one message and the message's SMS part; (action id, bulletin id)."""
    from sms_world import open_action

    action_id, bulletin_id = open_action(sessions)
    with sessions() as s, s.begin():
        message = Message(
            bulletin_id=bulletin_id,
            action_id=action_id,
            phone="+31612345678",
            channel=Channel.sms,
            status=MessageStatus.submitted,
        )
        s.add(message)
        s.flush()
        s.add(
            SmsPart(
                operator="op",
                smsc_message_id="a1",
                message_id=message.id,
                part=1,
                parts=1,
                bind="b",
                submitted_at=datetime.now(UTC),
            )
        )
    return action_id, bulletin_id


def test_a_sqlite_upgrade_keeps_the_rows_that_refer_to_a_copied_table(tmp_path):
    """Batch mode changes `message`'s keys by copying the table and dropping the original: with
    foreign keys enforced, that drop would delete every SMS part (ON DELETE CASCADE)."""
    url = f"sqlite:///{tmp_path / 'data.db'}"
    upgrade(url, "0006_hot_status")
    engine = make_engine(url)
    # Written as that revision's rows: today's models have columns added later (action.urgency).
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO centralist (id, name, meldkamer, dial_string, created_at) VALUES (1, 'C', 'MN', 'PJSIP/4021@mk', '2026-12-07 12:00:00')"
        )
        conn.exec_driver_sql(
            "INSERT INTO action (id, type, description, lat, lon, radius_m, send_sms, send_voice, centralist_id, "
            "status, created_at, expired) VALUES (1, 'robbery', 'Man', 52.09, 5.12, 1000, 1, 1, 1, 'open', "
            "'2026-12-07 12:00:00', 0)"
        )
        conn.exec_driver_sql(
            "INSERT INTO bulletin (id, action_id, kind, seq, sms_text, spoken_text, created_at) "
            "VALUES (1, 1, 'alert', 0, 't', 't', '2026-12-07 12:00:00')"
        )
        conn.exec_driver_sql(
            "INSERT INTO message (id, bulletin_id, action_id, phone, channel, status, attempts, "
            "created_at) VALUES (1, 1, 1, '+31612345678', 'sms', 'submitted', 1, '2026-12-07 12:00:00')"
        )
        conn.exec_driver_sql(
            "INSERT INTO sms_part (operator, smsc_message_id, message_id, part, parts, bind, "
            "submitted_at) VALUES ('op', 'a1', 1, 1, 1, 'b', '2026-12-07 12:00:00')"
        )
    upgrade(url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(SmsPart)) == 1
        assert conn.scalar(select(func.count()).select_from(Message)) == 1
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # enforced again for the app
    engine.dispose()


def test_a_message_belongs_to_its_bulletins_action(sessions):
    """One key, (bulletin_id, action_id) → bulletin: a message naming another action than its
    bulletin's is refused."""
    action_id, bulletin_id = _action_with_a_submitted_sms(sessions)
    with sessions() as s, s.begin():
        other = Action(
            type=ActionType.missing_person,
            description="Meisje, 8 jaar",
            lat=52.1,
            lon=5.1,
            radius_m=500,
            centralist_id=s.get(Action, action_id).centralist_id,
        )
        s.add(other)
        s.flush()
        other_action = other.id
    with sessions() as s:
        s.add(
            Message(
                bulletin_id=bulletin_id, action_id=other_action, phone="+31687654321", channel=Channel.sms
            )
        )
        with pytest.raises(IntegrityError):
            s.commit()


def _message_to_a_participant(sessions, bulletin_id: int, action_id: int) -> tuple[int, int]:
    """A participant and a message to her; (participant id, message id)."""
    with sessions() as s, s.begin():
        town = Municipality(cbs_code="GM0344", name="Utrecht", region="Midden-Nederland")
        s.add(town)
        s.flush()
        person = Participant(municipality_id=town.id, name="Anna", phone="+31611111111")
        s.add(person)
        s.flush()
        message = Message(
            bulletin_id=bulletin_id,
            action_id=action_id,
            phone=person.phone,
            participant_id=person.id,
            channel=Channel.sms,
            status=MessageStatus.delivered,
        )
        s.add(message)
        s.flush()
        return person.id, message.id


def test_deleting_a_participant_keeps_her_messages(sessions):
    """Sent messages keep the number, not the person: the participant goes, her messages stay
    with an id that no longer resolves (no key to the participant: see Message.participant_id)."""
    action_id, bulletin_id = _action_with_a_submitted_sms(sessions)
    person_id, message_id = _message_to_a_participant(sessions, bulletin_id, action_id)
    with sessions() as s, s.begin():
        s.delete(s.get(Participant, person_id))
    with sessions() as s:
        assert s.get(Participant, person_id) is None
        message = s.get(Message, message_id)
        assert (message.phone, message.participant_id, message.status) == (
            "+31611111111",
            person_id,
            MessageStatus.delivered,
        )


def test_a_downgrade_unlinks_the_messages_of_deleted_participants(empty_db):
    """Down to 0007 the key comes back, and with it ON DELETE SET NULL's outcome for the
    participants deleted meanwhile."""
    upgrade(empty_db)
    engine = make_engine(empty_db)
    sessions = session_factory(engine)
    action_id, bulletin_id = _action_with_a_submitted_sms(sessions)
    person_id, message_id = _message_to_a_participant(sessions, bulletin_id, action_id)
    with sessions() as s, s.begin():
        s.delete(s.get(Participant, person_id))
    engine.dispose()
    downgrade(empty_db, "0007_message_bulletin_fk")
    engine = make_engine(empty_db)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            f"SELECT phone, participant_id FROM message WHERE id = {message_id}"
        ).all()
    engine.dispose()
    assert rows == [("+31611111111", None)]
