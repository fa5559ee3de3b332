"""Settings: defaults that run embedded, environment variables, one TOML file, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from calstream.settings import Settings, broker_address, example_fleet_path
from calstream.wiring import policy_for


def test_defaults_run_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALSTREAM_CONFIG", raising=False)
    settings = Settings()
    assert settings.broker is None
    assert settings.db_path == Path("calstream-work/calstream.sqlite")
    assert settings.fleet_path == example_fleet_path() and settings.fleet_path.is_file()


def test_environment_beats_file_beats_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "calstream.toml"
    config.write_text(
        'broker = "mqtt://file-broker:1884"\ndue_soon_days = 14\ndb = "/data/x.sqlite"\n'
    )
    monkeypatch.setenv("CALSTREAM_CONFIG", str(config))
    monkeypatch.setenv("CALSTREAM_DUE_SOON_DAYS", "45")
    settings = Settings()
    assert settings.broker == "mqtt://file-broker:1884"
    assert settings.due_soon_days == 45.0
    assert settings.db_path == Path("/data/x.sqlite")
    assert policy_for(settings).due_soon_days == 45.0


def test_page_hinkley_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALSTREAM_CONFIG", raising=False)
    assert policy_for(Settings()).page_hinkley is False
    monkeypatch.setenv("CALSTREAM_PAGE_HINKLEY", "true")
    assert policy_for(Settings()).page_hinkley is True


def test_a_missing_config_file_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALSTREAM_CONFIG", "/nowhere/calstream.toml")
    with pytest.raises(FileNotFoundError, match=r"/nowhere/calstream\.toml"):
        Settings()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CALSTREAM_BROKER", "http://example:80", "not an MQTT URL"),
        ("CALSTREAM_DECISION_RULE", "coin-toss", "unknown decision rule"),
        ("CALSTREAM_DUE_SOON_DAYS", "-3", "greater than 0"),
    ],
)
def test_bad_values_say_what_is_wrong(
    name: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CALSTREAM_CONFIG", raising=False)
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_broker_address() -> None:
    assert broker_address("mqtt://broker.plant:1884") == ("broker.plant", 1884)
    assert broker_address("localhost") == ("localhost", 1883)
    with pytest.raises(ValueError, match="mqtt://"):
        broker_address("amqp://rabbit")
