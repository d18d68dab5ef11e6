"""Migrations: up from empty to head and back down, on PostgreSQL and SQLite; models match them."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from gateway.storage.db import make_engine
from gateway.storage.migrate import downgrade, upgrade
from gateway.storage.models import Base


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
