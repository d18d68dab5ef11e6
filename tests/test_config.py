"""Settings: `.env.example` documents exactly the real fields and defaults; production guards."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.config import DEFAULT_SECRET, Settings

ENV_EXAMPLE = Path(__file__).resolve().parent.parent / ".env.example"


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch, tmp_path):
    """No settings leak in from the environment or a developer's `.env`."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)


def _settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


def _env_example() -> list[tuple[str, str, str]]:
    """(name, value, comment line above it) for every assignment in `.env.example`."""
    entries = []
    previous = ""
    for number, raw in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if line and not line.startswith("#"):
            assert "=" in line, f".env.example line {number} is not NAME=value: {raw!r}"
            name, value = line.split("=", 1)
            entries.append((name.strip(), value.strip(), previous))
        previous = line
    return entries


def test_env_example_lists_exactly_the_settings_fields():
    names = [name for name, _, _ in _env_example()]
    assert len(names) == len(set(names)), f"duplicates in .env.example: {names}"
    assert set(names) == {field.upper() for field in Settings.model_fields}


def test_env_example_values_are_the_defaults():
    for name, value, _ in _env_example():
        field = Settings.model_fields[name.lower()]
        assert value == str(field.default), (
            f"{name}: .env.example says {value!r}, default is {field.default!r}"
        )


def test_env_example_explains_every_setting():
    for name, _, comment in _env_example():
        assert comment.startswith("#") and len(comment) > 2, f"{name} has no comment line above it"


def test_env_example_values_load():
    """The documented values are valid as they stand (as if copied to `.env`)."""
    settings = Settings(_env_file=ENV_EXAMPLE)
    assert settings == _settings()


@pytest.mark.parametrize("environment", ["production", "test"])
def test_outside_development_the_default_secret_is_refused(environment):
    with pytest.raises(ValidationError) as exc_info:
        _settings(environment=environment)
    assert "SECRET_KEY" in str(exc_info.value)
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        _settings(environment=environment, secret_key=DEFAULT_SECRET)


def test_production_accepts_a_real_secret():
    settings = _settings(environment="production", secret_key="x7Jq-not-the-default-9fK2")
    assert settings.environment == "production"


def test_production_secret_from_environment(monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        _settings()
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    assert _settings().secret_key == "from-the-environment"


def test_development_accepts_the_default_secret():
    assert _settings(environment="development").secret_key == DEFAULT_SECRET


def test_sqlalchemy_url_defaults_to_sqlite_file_in_data_dir(tmp_path):
    assert _settings().sqlalchemy_url == f"sqlite:///{Path('var') / 'burgernet.db'}"
    assert _settings(data_dir=tmp_path).sqlalchemy_url == f"sqlite:///{tmp_path / 'burgernet.db'}"


@pytest.mark.parametrize(
    ("database_url", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u:p@h:5433/db", "postgresql+psycopg://u:p@h:5433/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:////srv/burgernet.db", "sqlite:////srv/burgernet.db"),
    ],
)
def test_sqlalchemy_url_uses_psycopg_for_postgresql(database_url, expected):
    assert _settings(database_url=database_url).sqlalchemy_url == expected
