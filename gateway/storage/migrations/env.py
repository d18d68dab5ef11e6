"""Alembic environment: migrations run against the URL given by gateway.storage.migrate."""

from alembic import context
from sqlalchemy import pool

from gateway.storage.db import make_engine
from gateway.storage.models import Base

config = context.config


def _database_url() -> str:
    """The URL gateway.storage.migrate set: alembic.ini itself names no database."""
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError(
            "no database URL: run migrations with `burgernet migrate` (gateway.storage.migrate)"
        )
    return url


url = _database_url()


def run_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _run(connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode changes a SQLite table by copying it and dropping the original; with foreign
        # keys enforced, that drop deletes the rows referring to it (ON DELETE CASCADE) or fails.
        # Off for the migration (outside any transaction, else SQLite ignores it), checked after.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    # render_as_batch: SQLite can only ALTER a table by copying it; batch mode does that for us.
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    if sqlite:
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
        connection.rollback()
        if broken:
            raise RuntimeError(
                f"the migration left {len(broken)} row(s) whose foreign key points nowhere, e.g. {broken[0]}"
            )


if context.is_offline_mode():
    run_offline()
else:
    run_online()
