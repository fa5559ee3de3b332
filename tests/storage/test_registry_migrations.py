"""Registry migrations: upgrade on empty SQLite and PostgreSQL, no drift from the table
definitions (``alembic check``), a registry of revision 0001 (as calstream wrote it before the
registry operations) migrated with its data, the append-only audit tables, refusal of unknown
revisions and of version-2 store files."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, MetaData, create_engine, inspect, select, text
from sqlalchemy.exc import DBAPIError

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
from tests.storage.conftest import T0

EXPECTED_TABLES = {
    "alerts", "api_tokens", "broker_credentials", "calibration_curve_points", "calibrations",
    "contracts", "dead_letters", "gateways", "instrument_state", "instruments", "reader_roles",
    "registry_audit", "registry_changes", "sites", "tenant_clients", "tenants",
}  # fmt: skip
REVISION_0001_DUMP = Path(__file__).parent / "data" / "store-registry-0001.sql"
"""An embedded store written by calstream before the registry operations (registry revision
0001, store schema 3), dumped as SQL: the storage test fleet registered, ten readings of
acme-n-TT-001, one snapshot and one status change (tests/storage/conftest.py's fleet and T0)."""


@pytest.fixture
def revision_0001_store(tmp_path: Path) -> Path:
    """The store file of :data:`REVISION_0001_DUMP`, rebuilt as calstream wrote it."""
    path = tmp_path / "revision-0001" / "calstream.sqlite"
    path.parent.mkdir()
    with sqlite3.connect(path) as conn:
        conn.executescript(REVISION_0001_DUMP.read_text(encoding="utf-8"))
    conn.close()
    return path


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
    assert sorted(p.name for p in (folder / "versions").glob("*.py")) == [
        "0001_registry_tables.py",
        "0002_registry_operations.py",
        "0003_broker_credentials_and_reader_roles.py",
        "0004_dead_letter_replays.py",
        "0005_alerts.py",
        "0006_certificate_traceability.py",
    ]
    assert head_revision() == "0006"
    assert set(REGISTRY_TABLES) == EXPECTED_TABLES


def test_upgrade_to_head_on_an_empty_database_matches_the_tables(empty_database: Engine) -> None:
    with empty_database.begin() as connection:
        assert current_revision(connection) is None
        assert upgrade(connection) == head_revision()
    with empty_database.connect() as connection:
        assert current_revision(connection) == "0006"
        assert set(inspect(connection).get_table_names()) == {*EXPECTED_TABLES, "alembic_version"}
        # What `alembic check` reports: the migrated schema and the definitions do not differ.
        assert schema_differences(connection) == []
        unique = inspect(connection).get_unique_constraints("alerts")
        assert [u["column_names"] for u in unique] == [["instrument_id", "ts", "status"]]


def test_upgrade_is_idempotent_and_downgrade_removes_everything(empty_database: Engine) -> None:
    with empty_database.begin() as connection:
        upgrade(connection)
    with empty_database.begin() as connection:
        assert upgrade(connection) == "0006"
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


def _registry_rows(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table of revision 0001, sorted (the data a migration must keep)."""
    tables = MetaData()
    tables.reflect(engine, only=[t for t in EXPECTED_TABLES if t in _REVISION_0001_TABLES])
    with engine.connect() as connection:
        return {
            name: sorted((tuple(row) for row in connection.execute(select(table))), key=repr)
            for name, table in tables.tables.items()
        }


_REVISION_0001_TABLES = (
    "alerts", "calibration_curve_points", "calibrations", "dead_letters", "instrument_state",
    "instruments", "sites", "tenant_clients", "tenants",
)  # fmt: skip


def _check_migrated_fleet(url: str, before: dict[str, list[tuple[object, ...]]]) -> None:
    """The registry at head holds the 0001 data, gateways and contracts derived from it, and
    registering the same fleet again changes nothing."""
    from metrology.fleet import load_fleet
    from metrology.tenancy import Principal
    from tests.storage.conftest import fleet_document

    with SqlRegistry(url) as registry:
        assert registry.revision == "0006"
        assert registry.registered_instruments() == 6
        assert registry.alert_count() == 1
        assert registry.calibration_history("acme-n-TT-003").records[1].interval_days == 180.0
        scope = registry.operations.scope(Principal.local())
        gateways = registry.operations.gateways(scope)
        assert [(g.tenant, g.site, g.gateway_id, g.description) for g in gateways] == [
            ("acme", "north", "gw-01", ""),
            ("acme", "south", "gw-01", ""),
            ("globex", "main", "gw-01", ""),
        ]
        contracts = registry.operations.contracts(scope)
        assert [
            (c.provider, c.client, c.scope, c.valid_from, c.valid_until) for c in contracts
        ] == [
            ("calprov", "acme", "read", None, None),
            ("calprov", "globex", "read", None, None),
        ]
        # The fleet the old calstream registered: already there, so no change and no audit row.
        assert registry.register_fleet(load_fleet(fleet_document())) == 0
        assert registry.operations.changes_since(0) == []
        assert registry.operations.tenants(scope)[0].shared_gateways is False
    engine = create_engine(url)
    try:
        after = _registry_rows(engine)
    finally:
        engine.dispose()
    # Every row of 0001 is still there, with one more column where one was added.
    for table, rows in before.items():
        widened = {"instruments": 1, "tenants": 3}.get(table, 0)
        assert [row[: len(row) - widened] if widened else row for row in after[table]] == rows


def test_an_embedded_store_of_revision_0001_opens_and_migrates(revision_0001_store: Path) -> None:
    path = revision_0001_store
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        assert current_revision(connection) == "0001"
    before = _registry_rows(engine)
    engine.dispose()
    assert len(before["calibrations"]) == 7 and len(before["tenant_clients"]) == 2
    with SqliteStore(path) as store:
        assert store.reading_count() == 10
        assert [s.status.value for s in store.snapshots()] == ["DRIFTING"]
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        assert current_revision(connection) == "0006"
        assert schema_differences(connection) == []
        # The series tables and the view over instruments (altered in place) still read.
        rows = connection.execute(
            text("SELECT tenant, site, unit, COUNT(*), MIN(ts) FROM readings_full")
        ).all()
        assert rows == [("acme", "north", "degC", 10, T0)]
    engine.dispose()
    _check_migrated_fleet(f"sqlite:///{path}", before)


def test_a_postgresql_registry_of_revision_0001_migrates(
    postgres: object, revision_0001_store: Path
) -> None:
    url = postgres.url  # type: ignore[attr-defined]
    source = create_engine(f"sqlite:///{revision_0001_store}")
    target = create_engine(url)
    try:
        before = _registry_rows(source)
        # The registry as revision 0001 created it, filled with the rows calstream wrote then.
        with target.begin() as connection:
            command.upgrade(alembic_config(connection=connection), "0001")
        tables = MetaData()
        tables.reflect(target, only=list(_REVISION_0001_TABLES))
        with source.connect() as reading, target.begin() as writing:
            for table in tables.sorted_tables:
                rows = [dict(r._mapping) for r in reading.execute(select(table))]
                if rows:
                    writing.execute(table.insert(), rows)
            for table in ("alerts", "dead_letters"):  # serial columns follow the copied ids
                writing.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
                    )
                )
        assert _registry_rows(target) == before
    finally:
        source.dispose()
        target.dispose()
    _check_migrated_fleet(url, before)


def test_the_audit_trail_and_the_change_log_are_append_only(empty_database: Engine) -> None:
    with empty_database.begin() as connection:
        upgrade(connection)
        for table, values in (
            ("registry_audit", "(at, principal, role, token_id, operation, entity, entity_key) "
                               "VALUES (1, 'local', 'admin', 'local', 'create_tenant', 'tenant', "
                               "'acme')"),
            ("registry_changes", "(at, kind, operation, key) VALUES (1, 'tenant', "
                                 "'create_tenant', 'acme')"),
        ):  # fmt: skip
            connection.execute(text(f"INSERT INTO {table} {values}"))
    for statement in (
        "UPDATE registry_audit SET reason = 'rewritten'",
        "DELETE FROM registry_audit",
        "UPDATE registry_changes SET key = 'globex'",
        "DELETE FROM registry_changes",
    ):
        with pytest.raises(DBAPIError, match="append-only"), empty_database.begin() as connection:
            connection.execute(text(statement))
    with empty_database.connect() as connection:
        counts = [
            connection.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
            for t in ("registry_audit", "registry_changes")
        ]
    assert counts == [1, 1]


def test_revision_0003_adds_broker_credentials_and_reader_roles_beside_the_data(
    empty_database: Engine,
) -> None:
    """A registry at 0002 with a tenant, a site and a gateway: 0003 adds the two tables, empty,
    and keeps every row; downgrading to 0002 removes exactly those two tables."""
    rows = (
        "INSERT INTO tenants (tenant_id, name, kind, shared_gateways) "
        "VALUES ('acme', 'ACME', 'manufacturer', false)",
        "INSERT INTO sites (tenant, site_id, name) VALUES ('acme', 'north', 'North')",
        "INSERT INTO gateways (tenant, site, gateway_id, description, created_at) "
        "VALUES ('acme', 'north', 'gw-01', 'roof', 1.5)",
    )
    with empty_database.begin() as connection:
        command.upgrade(alembic_config(connection=connection), "0002")
        for statement in rows:
            connection.execute(text(statement))
    with empty_database.begin() as connection:
        assert upgrade(connection) == "0006"
    with empty_database.connect() as connection:
        assert schema_differences(connection) == []
        for table in ("broker_credentials", "reader_roles"):
            assert connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one() == 0
        assert connection.execute(text("SELECT * FROM gateways")).all() == [
            ("acme", "north", "gw-01", "roof", 1.5, None)
        ]
        keys = inspect(connection).get_foreign_keys("broker_credentials")
        assert sorted((k["referred_table"], tuple(k["constrained_columns"])) for k in keys) == [
            ("gateways", ("tenant", "site", "gateway_id")),
            ("tenants", ("tenant",)),
        ]
    with empty_database.begin() as connection:
        command.downgrade(alembic_config(connection=connection), "0002")
    with empty_database.connect() as connection:
        assert current_revision(connection) == "0002"
        names = set(inspect(connection).get_table_names())
        assert names == EXPECTED_TABLES - {"broker_credentials", "reader_roles"} | {
            "alembic_version"
        }
        assert connection.execute(text("SELECT COUNT(*) FROM gateways")).scalar_one() == 1
