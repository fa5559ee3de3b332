"""Store selection by one setting: URLs accepted and refused, what each opens, settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from calstream.settings import Settings
from storage.composite import CompositeStore
from storage.registry import SqlRegistry
from storage.select import check_registry_url, open_store, sqlite_path, store_kind
from storage.sqlite_store import SqliteStore


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("sqlite:///calstream-work/calstream.sqlite", "sqlite"),
        ("sqlite:////var/lib/calstream/store.sqlite", "sqlite"),
        ("influxdb://user:pw@localhost:8086/calstream", "influxdb"),
        ("influxdb2://localhost:8086?org=acme&bucket=calstream&token=t0ken", "influxdb"),
    ],
)
def test_accepted_store_urls(url: str, kind: str) -> None:
    assert store_kind(url) == kind


@pytest.mark.parametrize(
    "url", ["", "calstream.sqlite", "sqlite:///", "postgresql://localhost/db", "mqtt://host"]
)
def test_refused_store_urls_name_the_accepted_forms(url: str) -> None:
    with pytest.raises(
        ValueError, match=r"not one of: sqlite:///path .*, influxdb://.* or influxdb2://"
    ):
        store_kind(url)


def test_sqlite_paths_relative_and_absolute() -> None:
    assert sqlite_path("sqlite:///work/a.sqlite") == Path("work/a.sqlite")
    assert sqlite_path("sqlite:////srv/a.sqlite") == Path("/srv/a.sqlite")


def test_registry_urls() -> None:
    for url in ("postgresql://u@h:5432/db", "postgresql+psycopg://u@h/db", "sqlite:///r.sqlite"):
        assert check_registry_url(url) == url
    with pytest.raises(ValueError, match=r"postgresql://.* or sqlite:///path"):
        check_registry_url("mysql://u@h/db")


def test_open_store_sqlite_is_the_embedded_store(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'a' / 'store.sqlite'}")
    try:
        assert isinstance(store, SqliteStore)
        assert (tmp_path / "a" / "store.sqlite").is_file()
    finally:
        store.close()
    with pytest.raises(ValueError, match="keeps its registry in its own file"):
        open_store(f"sqlite:///{tmp_path / 'b.sqlite'}", "postgresql://u@h/db")


def test_open_store_influxdb_composes_sink_and_default_sqlite_registry(tmp_path: Path) -> None:
    # Opening talks to no InfluxDB yet (the sink connects on its first write or read).
    store = open_store("influxdb://127.0.0.1:1/calstream", None, work_dir=tmp_path / "work")
    try:
        assert isinstance(store, CompositeStore)
        assert isinstance(store.registry, SqlRegistry)
        assert store.registry.safe_url == f"sqlite:///{tmp_path / 'work' / 'registry.sqlite'}"
        assert (tmp_path / "work" / "registry.sqlite").is_file()
    finally:
        store.close()


def test_settings_store_and_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CALSTREAM_CONFIG", raising=False)
    monkeypatch.setenv("CALSTREAM_WORK_DIR", str(tmp_path))
    assert Settings().store_url == f"sqlite:///{tmp_path / 'calstream.sqlite'}"
    monkeypatch.setenv("CALSTREAM_STORE", "influxdb2://h:8086?org=o&bucket=b&token=t")
    monkeypatch.setenv("CALSTREAM_REGISTRY", "postgresql://calstream@db:5432/calstream")
    settings = Settings()
    assert settings.store_url == "influxdb2://h:8086?org=o&bucket=b&token=t"
    assert settings.registry == "postgresql://calstream@db:5432/calstream"
    monkeypatch.setenv("CALSTREAM_STORE", "influx://h:8086/db")
    with pytest.raises(ValidationError, match="is not one of: sqlite:///path"):
        Settings()
    monkeypatch.setenv("CALSTREAM_STORE", "")
    monkeypatch.setenv("CALSTREAM_REGISTRY", "redis://h")
    with pytest.raises(ValidationError, match="registry 'redis://h' is not one of: postgresql://"):
        Settings()
