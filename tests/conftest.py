"""Shared fixtures: real PostgreSQL and Redis on loopback (started by `make test`), and SQLite.

Every database test runs on both backends through the `db_url` fixture. Each backend gets one
freshly migrated database per test session; tables are emptied after every test.
"""

import os
import tempfile
import uuid
from pathlib import Path

import pytest
from hypothesis.configuration import set_hypothesis_home_dir
from sqlalchemy import create_engine, text

from gateway.storage.db import make_engine, session_factory
from gateway.storage.migrate import upgrade
from gateway.storage.models import Base

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# Hypothesis (tests/test_fuzz.py, and schemathesis in tests/test_schemathesis.py) writes caches
# (unicode tables, constants found in the source) as soon as strategies are built, at collection
# time. Keep them out of the working tree unless the caller chose a place. Process-wide.
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "burgernet-test-hypothesis")


def _pg_create() -> str:
    name = f"bn_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
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
def empty_db(request, tmp_path):
    """A database with no schema at all, on each backend (for migration tests)."""
    if request.param == "postgresql":
        url = _pg_create()
        yield url
        _pg_drop(url)
    else:
        yield f"sqlite:///{tmp_path / 'empty.db'}"


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
            # A test that leaves a transaction open must fail here, not hang the whole run.
            conn.execute(text("SET LOCAL lock_timeout = '20s'"))
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
def pg_sessions(pg_url):
    """A session factory on PostgreSQL only (tests of what only PostgreSQL has)."""
    engine = make_engine(pg_url)
    yield session_factory(engine)
    engine.dispose()
    _empty_tables(pg_url)


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


# --- the API against a real database ------------------------------------------------------------


UTRECHT = (52.0907, 5.1214)


class ApiWorld:
    """An API client plus the people a test needs, each with a real API key."""

    def __init__(self, client, sessions, queue, settings):
        self.client, self.sessions, self.queue, self.settings = client, sessions, queue, settings
        from gateway import auth
        from gateway.storage.models import Centralist, Municipality, Role

        with sessions() as s:
            self.utrecht = Municipality(cbs_code="GM0344", name="Utrecht", region="Midden-Nederland")
            self.zeist = Municipality(cbs_code="GM0355", name="Zeist", region="Midden-Nederland")
            self.centralist = Centralist(
                name="C. Entralist", meldkamer="Midden-Nederland", dial_string="PJSIP/4021@mk"
            )
            s.add_all([self.utrecht, self.zeist, self.centralist])
            s.flush()
            secret = settings.secret_key
            self.keys = {
                "admin": auth.create_user(s, secret, "admin", Role.admin)[1],
                "centralist": auth.create_user(
                    s, secret, "centralist", Role.centralist, centralist_id=self.centralist.id
                )[1],
                "utrecht": auth.create_user(
                    s, secret, "utrecht", Role.municipality, municipality_id=self.utrecht.id
                )[1],
                "zeist": auth.create_user(
                    s, secret, "zeist", Role.municipality, municipality_id=self.zeist.id
                )[1],
            }
            s.commit()

    def as_(self, who: str) -> dict:
        """Headers that authenticate as `who` (admin, centralist, utrecht, zeist)."""
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def call(self, who: str, method: str, path: str, expect: int = 200, **kw):
        r = self.client.request(method, path, headers=self.as_(who), **kw)
        assert r.status_code == expect, f"{method} {path} as {who}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def register(
        self, *phones: str, channel: str = "sms", lat: float = UTRECHT[0], lon: float = UTRECHT[1]
    ) -> None:
        """Participants of Utrecht, one per number, each at one address at (lat, lon)."""
        from gateway.storage.models import Address, Participant
        from gateway.targeting.geo import tile_of

        with self.sessions() as s:
            for phone in phones:
                p = Participant(municipality_id=self.utrecht.id, name="P", phone=phone)
                p.addresses = [
                    Address(
                        postcode="3511 AB",
                        house_number="1",
                        lat=lat,
                        lon=lon,
                        tile=tile_of(lat, lon),
                        channel=channel,
                    )
                ]
                s.add(p)
            s.commit()

    def launch(
        self,
        description: str = "Man met rode jas.",
        *,
        channels=("sms",),
        lat: float = UTRECHT[0],
        lon: float = UTRECHT[1],
        radius_m: int = 1000,
    ) -> dict:
        """A robbery action around (lat, lon), created and launched by the centralist: the open action."""
        action = self.call(
            "centralist",
            "POST",
            "/api/v1/actions",
            expect=201,
            json={
                "type": "robbery",
                "description": description,
                "lat": lat,
                "lon": lon,
                "radius_m": radius_m,
                "channels": list(channels),
            },
        )
        return self.call("centralist", "POST", f"/api/v1/actions/{action['id']}/launch")["action"]


@pytest.fixture
def settings(tmp_path):
    from gateway.config import Settings

    return Settings(environment="test", secret_key="test-secret-" + uuid.uuid4().hex, data_dir=tmp_path)


@pytest.fixture
def api(sessions, settings):
    """The real app on the test database (both backends) with an in-process queue."""
    from fastapi.testclient import TestClient

    from gateway.api.app import create_app
    from gateway.queue import MemoryQueue

    queue = MemoryQueue()
    app = create_app(settings, sessions=sessions, queue=queue, housekeeping_jobs=False)
    with TestClient(app) as client:
        yield ApiWorld(client, sessions, queue, settings)


# --- a real Asterisk 22 (Debian sid in a chroot; tests/asterisk_harness.py) ---------------------


@pytest.fixture(scope="session")
def asterisk():
    """Asterisk with the project's asterisk/ and dialplans/ plus the test contexts, for the session.

    Builds the chroot on first use (about a minute, needs root). `asterisk_harness` imports as a
    top-level module because pytest puts tests/ (this conftest's directory) on sys.path.
    """
    from asterisk_harness import AsteriskServer, AsteriskUnavailable, ensure_chroot

    missing = None
    try:
        server = AsteriskServer(ensure_chroot())
        server.start()
    except AsteriskUnavailable as exc:
        missing = str(exc)
    if missing:  # a failure, not a skip: the project tests against the real parts
        pytest.fail(missing, pytrace=False)
    yield server
    server.stop()


# --- an independent SMSC (node-smpp; tests/smsc/simulator.js via tests/smsc_sim.py) -----------


@pytest.fixture
def make_smsc(tmp_path):
    """Start SMSC simulators (`make_smsc(system_id=..., password=...)`), all stopped after the test."""
    from smsc_sim import SimulatorUnavailable, SmscSimulator

    started = []

    def make(**kw):
        sim = SmscSimulator(log_path=tmp_path / f"smsc-{len(started)}.log", **kw)
        started.append(sim)
        try:
            sim.start()
        except SimulatorUnavailable as exc:  # a failure, not a skip: the project tests against the real parts
            pytest.fail(str(exc), pytrace=False)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def smsc(make_smsc):
    """A fresh SMSC simulator for one test (its log in tmp_path/smsc-0.log), stopped afterwards."""
    return make_smsc()
