"""Opening a store: schema, pragmas, idempotency, version guard, registry round-trip."""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path

import pytest

import storage.sqlite_store
from metrology.fleet import Fleet
from storage.errors import SchemaVersionError, StorageError
from storage.schema import SCHEMA_VERSION
from storage.sqlite_store import SqliteStore

TABLES = {
    "alembic_version", "alerts", "api_tokens", "broker_credentials", "calibration_curve_points",
    "calibrations", "contracts", "dead_letters", "gateways", "instrument_state", "instruments",
    "reader_roles", "readings", "registry_audit", "registry_changes", "residuals",
    "schema_version", "sites", "tenant_clients", "tenants",
}  # fmt: skip


def _objects(path: Path) -> dict[str, set[str]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
        found: dict[str, set[str]] = {}
        for kind, name in rows:
            found.setdefault(kind, set()).add(name)
    return found


def test_open_creates_folders_tables_view_and_wal(store_path: Path) -> None:
    store = SqliteStore(store_path)
    store.close()
    objects = _objects(store_path)
    assert objects["table"] == TABLES
    assert objects["view"] == {"status_history", "readings_full"}
    # The audit trail and the change log refuse UPDATE and DELETE.
    assert objects["trigger"] == {
        f"{table}_no_{verb}"
        for table in ("registry_audit", "registry_changes")
        for verb in ("update", "delete")
    }
    with sqlite3.connect(store_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        columns = {
            table: [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            for table in ("readings", "residuals")
        }
        sql = dict(
            conn.execute("SELECT name, sql FROM sqlite_master WHERE name IN (?, ?)", tuple(columns))
        )
    assert SCHEMA_VERSION == 3
    # Narrow rows: the tenant, site, gateway and unit are the instrument's (readings_full).
    assert columns == {
        "readings": [
            "ts", "instrument_id", "seq", "value", "corrected", "certificate_id", "status",
        ],
        "residuals": [
            "ts", "instrument_id", "seq", "reference", "residual", "u_residual", "ewma",
            "cusum_high", "cusum_low", "drift_rate",
        ],
    }  # fmt: skip
    for table in columns:
        assert "WITHOUT ROWID" in sql[table]
        # The reading's identity (instrument_id, ts, seq), time first: batches append at the tail.
        assert "PRIMARY KEY (ts, instrument_id, seq)" in sql[table]


def _plan(conn: sqlite3.Connection, sql: str) -> list[str]:
    return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", (1, 2, 3))]


def test_readings_full_query_plans_use_the_primary_keys(store_path: Path) -> None:
    SqliteStore(store_path).close()
    with sqlite3.connect(store_path) as conn:
        per_instrument = _plan(
            conn, "SELECT * FROM readings_full WHERE instrument_id = ? AND ts BETWEEN ? AND ?"
        )
        per_tenant = _plan(
            conn, "SELECT * FROM readings_full WHERE tenant = ? AND ts BETWEEN ? AND ?"
        )
    # A time range is a range of the readings key; each reading then finds its residual and
    # instrument by primary key. No full scan, no temporary index.
    expected = [
        "SEARCH r USING PRIMARY KEY (ts>? AND ts<?)",
        "SEARCH x USING PRIMARY KEY (ts=? AND instrument_id=? AND seq=?) LEFT-JOIN",
    ]
    assert per_instrument[:2] == expected
    assert per_instrument[2].startswith("SEARCH i USING INDEX sqlite_autoindex_instruments_1")
    assert per_tenant[0] == expected[0]
    assert all(step.startswith("SEARCH") for step in per_tenant)


def test_public_api() -> None:
    # Imported by path: a test folder named like the package may shadow `storage/__init__.py`
    # on sys.path (tests/ is put first by the root conftest).
    spec = importlib.util.spec_from_file_location(
        "_storage_api", Path(storage.sqlite_store.__file__).with_name("__init__.py")
    )
    assert spec is not None and spec.loader is not None
    api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(api)
    assert sorted(api.__all__) == [
        "CompositeStore", "NO_DATA", "SCHEMA_VERSION", "STATUS_KEYS", "SchemaVersionError",
        "SqlRegistry", "SqliteStore", "StorageError", "WriteResult", "open_store",
    ]  # fmt: skip
    assert api.SqliteStore is SqliteStore
    assert all(hasattr(api, name) for name in api.__all__)


def test_opening_twice_changes_nothing(store_path: Path, fleet: Fleet) -> None:
    first = SqliteStore(store_path)
    first.register_fleet(fleet)
    first.close()
    before = _objects(store_path)
    second = SqliteStore(store_path)
    assert second.schema_version == SCHEMA_VERSION
    assert second.registered_instruments() == 6
    second.close()
    assert _objects(store_path) == before
    with sqlite3.connect(store_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone() == (1,)


def test_synchronous_modes(store_path: Path) -> None:
    store = SqliteStore(store_path, synchronous="normal")
    # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA (per connection).
    assert store._conn.execute("PRAGMA synchronous").fetchone() == (1,)
    assert store._conn.execute("PRAGMA foreign_keys").fetchone() == (0,)
    assert store._conn.execute("PRAGMA busy_timeout").fetchone() == (10_000,)
    store.close()
    store = SqliteStore(store_path)
    assert store._conn.execute("PRAGMA synchronous").fetchone() == (2,)
    store.close()
    with pytest.raises(ValueError, match="synchronous must be one of"):
        SqliteStore(store_path, synchronous="FULL; DROP TABLE readings")


def test_newer_schema_is_refused_untouched(store_path: Path) -> None:
    SqliteStore(store_path).close()
    with sqlite3.connect(store_path) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(SchemaVersionError, match=f"version {SCHEMA_VERSION + 1} is newer"):
        SqliteStore(store_path)
    with sqlite3.connect(store_path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (
            SCHEMA_VERSION + 1,
        )


def test_version_1_store_is_refused_untouched(store_path: Path) -> None:
    # Schema version 1 kept every number in one wide readings table; it is not migrated.
    store_path.parent.mkdir(parents=True)
    with sqlite3.connect(store_path) as conn:
        conn.execute("CREATE TABLE readings (tenant TEXT, instrument_id TEXT, ts REAL, seq INT)")
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (1)")
    before = _objects(store_path)
    with pytest.raises(SchemaVersionError, match=r"version 1 is older .* not migrated"):
        SqliteStore(store_path)
    assert _objects(store_path) == before


def test_unopenable_path_raises_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match="cannot open store"):
        SqliteStore(blocker / "store.sqlite")


def test_register_fleet_round_trip(store: SqliteStore, store_path: Path, fleet: Fleet) -> None:
    store.register_fleet(fleet)
    store.register_fleet(fleet)  # an upsert: registering twice adds nothing
    assert store.registered_instruments() == 6
    with sqlite3.connect(store_path) as conn:
        count = lambda table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: E731
        assert {t: count(t) for t in ("tenants", "tenant_clients", "sites", "calibrations")} == {
            "tenants": 3,
            "tenant_clients": 2,
            "sites": 3,
            "calibrations": 7,
        }
        assert conn.execute(
            "SELECT tenant_id, kind FROM tenants ORDER BY tenant_id"
        ).fetchall() == [
            ("acme", "manufacturer"),
            ("calprov", "calibration_provider"),
            ("globex", "manufacturer"),
        ]
        assert conn.execute(
            "SELECT tenant, site, gateway, measurand, unit, tolerance_lower, tolerance_upper, "
            "tolerance_relative, reporting_period_s, reference_kind, peer_group, range_low, "
            "range_high, description FROM instruments WHERE instrument_id = 'acme-s-PT-001'"
        ).fetchone() == (
            "acme", "south", "gw-01", "pressure", "bar", -0.01, 0.01,
            0.001, 60.0, "none", None, 0.0, 10.0, "line pressure",
        )  # fmt: skip
        assert conn.execute(
            "SELECT certificate_id, calibrated_at, correction_offset, correction_gain, "
            "expanded_uncertainty, coverage_factor, standard_uncertainty, interval_days, due_at "
            "FROM calibrations WHERE instrument_id = 'acme-n-TT-003' ORDER BY calibrated_at"
        ).fetchall() == [
            ("CAL-acme-n-TT-003-1", 1_768_435_200.0, 0.02, 1.0001, 0.06, 2.0, 0.03, 365.0,
             1_768_435_200.0 + 365 * 86_400.0),
            ("CAL-acme-n-TT-003-2", 1_780_272_000.0, -0.01, 1.0, 0.05, 2.0, 0.025, 180.0,
             1_780_272_000.0 + 180 * 86_400.0),
        ]  # fmt: skip


def test_register_fleet_upserts_amended_instrument(
    store: SqliteStore, store_path: Path, fleet: Fleet
) -> None:
    from dataclasses import replace

    store.register_fleet(fleet)
    spec = fleet.instruments["globex-TT-001"]
    amended = replace(spec, description="moved to line 2", reporting_period_s=30.0)
    store.register_fleet(
        replace(fleet, instruments={**fleet.instruments, spec.instrument_id: amended})
    )
    assert store.registered_instruments() == 6
    with sqlite3.connect(store_path) as conn:
        assert conn.execute(
            "SELECT description, reporting_period_s FROM instruments "
            "WHERE instrument_id = 'globex-TT-001'"
        ).fetchone() == ("moved to line 2", 30.0)
