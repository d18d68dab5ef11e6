"""The `burgernet` command end to end on an SQLite file: migrate, first admin, seed, import."""

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from gateway import auth
from gateway.cli import app
from gateway.config import get_settings
from gateway.storage.db import make_engine, session_factory
from gateway.storage.models import Participant, Role, User


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "")
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("SECRET_KEY", "cli-test-secret")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def run(*args):
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")


def test_migrate_create_admin_seed_and_import(cli_env):
    assert run("migrate")[0] == 0
    code, out = run("create-admin", "ops")
    assert code == 0
    key = out.strip().splitlines()[-1]
    sessions = session_factory(make_engine(get_settings().sqlalchemy_url))
    with sessions() as s:
        user = auth.authenticate(s, "cli-test-secret", key)
        assert (user.name, user.role) == ("ops", Role.admin)
        assert key not in str(s.execute(select(User.key_hash, User.key_prefix)).all())

    code, out = run("seed", "--participants", "300", "--around", "52.09,5.12,15")
    assert code == 0, out
    assert run("seed", "--around", "nonsense")[0] != 0

    csv = cli_env / "p.csv"
    csv.write_text(
        "name,phone,postcode,house_number,lat,lon,channel\n"
        "Anna de Vries,0612345671,3511 AB,1,52.09,5.12,sms\n"
        "Bert Bakker,12345,3511 AB,2,52.09,5.12,sms\n",
        encoding="utf-8",
    )
    code, out = run("import-participants", str(csv), "--municipality", "GM0344")
    assert code == 1  # one bad row: reported, and the exit code says so
    assert "line 3: phone" in out and "1 participants created" in out
    assert run("import-participants", str(csv), "--municipality", "GM9999")[0] != 0
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Participant)) == 301


def test_the_default_secret_stops_a_production_start(cli_env, monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", "change-me")
    get_settings.cache_clear()
    code, out = run("migrate")
    assert code == 2 and "SECRET_KEY" in out, out


def test_prompts_build_writes_asterisk_ready_audio(cli_env):
    import wave

    from gateway import prompts

    code, out = run("prompts", "build", "--out", str(cli_env / "sounds"))
    assert code == 0, out
    for prompt_id in prompts.texts():
        with wave.open(str(cli_env / "sounds" / f"{prompt_id}.wav")) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
            assert w.getnframes() / 8000 >= prompts.MIN_SECONDS
        assert prompt_id in out
