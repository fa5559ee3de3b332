"""Registry migrations: upgrade on empty SQLite and PostgreSQL, no drift from the table
definitions (``alembic check``), refusal of unknown revisions and of version-2 store files."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, inspect, text

from storage.errors import SchemaVersionError
from storage.registry import REGISTRY_TABLES, SqlRegistry
from storage.registry.migrate import (
    alembic_config,
    current_revision,
    head_revision,
    migrations_folder,
    schema_differences,
    upgrade,
)
from storage.sqlite_store import SqliteStore

EXPECTED_TABLES = {
    "alerts", "calibration_curve_points", "calibrations", "dead_letters", "instrument_state",
    "instruments", "sites", "tenant_clients", "tenants",
}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    else:
        url = request.getfixturevalue("postgres").url
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def test_the_migrations_ship_inside_the_package() -> None:
    folder = Path(migrations_folder())
    assert (folder / "env.py").is_file()
    assert sorted(p.name for p in (folder / "versions").glob("*.py")) == ["0001_registry_tables.py"]
    assert head_revision() == "0001"
    assert set(REGISTRY_TABLES) == EXPECTED_TABLES


def test_upgrade_to_head_on_an_empty_database_matches_the_tables(empty_database: Engine) -> None:
    with empty_database.begin() as connection:
        assert current_revision(connection) is None
        assert upgrade(connection) == head_revision()
    with empty_database.connect() as connection:
        assert current_revision(connection) == "0001"
        assert set(inspect(connection).get_table_names()) == {*EXPECTED_TABLES, "alembic_version"}
        # What `alembic check` reports: the migrated schema and the definitions do not differ.
        assert schema_differences(connection) == []
        unique = inspect(connection).get_unique_constraints("alerts")
        assert [u["column_names"] for u in unique] == [["instrument_id", "ts", "status"]]


def test_upgrade_is_idempotent_and_downgrade_removes_everything(empty_database: Engine) -> None:
    with empty_database.begin() as connection:
        upgrade(connection)
    with empty_database.begin() as connection:
        assert upgrade(connection) == "0001"
        command.downgrade(alembic_config(connection=connection), "base")
    with empty_database.connect() as connection:
        assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
        assert current_revision(connection) is None


def test_an_unknown_revision_is_refused_untouched(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    SqlRegistry(url).close()
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    with pytest.raises(SchemaVersionError, match=r"revision 'f00d' is unknown .* newer calstream"):
        SqlRegistry(url)
    with engine.connect() as connection:
        assert current_revision(connection) == "f00d"
    engine.dispose()


def test_the_embedded_store_registry_part_matches_the_tables(tmp_path: Path) -> None:
    path = tmp_path / "calstream.sqlite"
    SqliteStore(path).close()
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()
        assert schema_differences(connection) == []
    engine.dispose()
    # The same file is a registry SqlRegistry opens as it is.
    with SqlRegistry(f"sqlite:///{path}") as registry:
        assert registry.revision == head_revision()
        assert registry.registered_instruments() == 0


def test_a_version_2_store_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE calibrations (instrument_id TEXT, certificate_id TEXT)")
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (2)")
    with pytest.raises(
        SchemaVersionError,
        match=r"version 2 is older .* \(3\) and is not migrated .* move the file away",
    ):
        SqliteStore(path)
    with sqlite3.connect(path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert names == {"calibrations", "schema_version"}
