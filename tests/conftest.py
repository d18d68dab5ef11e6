"""Shared fixtures: real PostgreSQL and Redis on loopback (started by `make test`), and SQLite.

Every database test runs on both backends through the `db_url` fixture. Each backend gets one
freshly migrated database per test session; tables are emptied after every test.
"""

import os
import uuid

import pytest
from sqlalchemy import create_engine, text

from gateway.storage.db import make_engine, session_factory
from gateway.storage.migrate import upgrade
from gateway.storage.models import Base

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _pg_create() -> str:
    name = f"bn_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 — turned into a clear instruction
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not usable ({exc}); run `make test`, which starts it")
    finally:
        admin.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _pg_drop(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_url():
    """A freshly migrated PostgreSQL database for this test session."""
    url = _pg_create()
    upgrade(url)
    yield url
    _pg_drop(url)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory):
    """A freshly migrated SQLite file for this test session."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'burgernet.db'}"
    upgrade(url)
    return url


@pytest.fixture(params=["postgresql", "sqlite"])
def db_url(request):
    """Each database test runs once per backend; tables are empty at the start."""
    url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")
    yield url
    _empty_tables(url)


def _empty_tables(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
    engine.dispose()


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine):
    """A session factory bound to the test database."""
    return session_factory(engine)


@pytest.fixture
def redis_url():
    """The Redis on loopback; tests isolate themselves with a unique key prefix (`key_prefix`)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {REDIS_URL} is not usable ({exc}); run `make test`, which starts it")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def key_prefix(redis_url):
    """A Redis key prefix owned by one test; its keys are deleted afterwards."""
    import redis

    prefix = f"bn-test-{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()
