"""The SQLite schema of the embedded store (``docs/storage.md`` is the full reference).

Times are REAL epoch seconds, UTC (Grafana's ``frser-sqlite-datasource`` reads them as time
columns). Values are in the instrument's registered unit. JSON columns hold standard JSON
(non-finite numbers are written as ``null``). Column names are plain so dashboards can use them.

Registry tables (defined in :mod:`storage.registry.tables`, created and migrated by Alembic,
written through SQLAlchemy Core: the same code as the PostgreSQL registry)::

    tenants (with their default decision_rule, interval_policy, shared_gateways),
    tenant_clients, contracts (provider, client, scope, valid_from, valid_until, ended_at),
    sites, gateways (retired_at), instruments (with decision_rule; retired_at)
    api_tokens                 id, tenant, role, name, expiry, revocation, SHA-256 of the secret
    registry_audit             append-only: when, who, operation, entity, key, before, after, why
    registry_changes           append-only change log: seq, at, kind, operation, tenant, key
    calibrations               every revision of every certificate: PK (instrument_id,
                               certificate_id, revision), in_force, correction_kind
                               (gain_offset | curve), correction_offset, correction_gain,
                               expanded_uncertainty, coverage_factor, standard_uncertainty,
                               interval_days, due_at, amended_at, amended_by, amendment_reason
    calibration_curve_points   the certificate points of curve corrections
    instrument_state, alerts, dead_letters (below; written by the batch transaction)
    alembic_version            the registry's migration revision

Series and state (written by :meth:`SqliteStore.write`, one transaction per batch)::

    readings          PK (ts, instrument_id, seq), WITHOUT ROWID: value [registered unit],
                      corrected [unit], certificate_id, status (text)
    residuals         same key, WITHOUT ROWID, only for readings with drift numbers (a
                      residual): reference, residual, u_residual [unit], ewma, cusum_high,
                      cusum_low [unit], drift_rate [unit/day]
    readings_full     VIEW: readings LEFT JOIN residuals LEFT JOIN instruments, with the columns
                      of version 1's wide readings table (tenant, site, gateway, unit, ...) and
                      measurand
    instrument_state  latest health per instrument (PK instrument_id): tenant, site, status,
                      conditions (JSON list), reasons (JSON list), evaluated_at, last_reading_at,
                      numbers (JSON object) and, broken out for dashboards, residual,
                      u_residual, drift_rate, predicted_oot_at, probability_of_conformity,
                      due_at, first_drift_at
    alerts            every status change (the status history): id PK, tenant, site, instrument_id,
                      ts, previous, status, reasons (JSON list), numbers (JSON object);
                      UNIQUE (instrument_id, ts, status) so a re-delivered change is stored once
    status_history    VIEW over alerts, with ts_utc as ISO text for people
    dead_letters      id PK, received_at, topic, tenant, instrument_id, seq, reason, detail,
                      excerpt, count (readings the rejection stands for), dedup_key UNIQUE
    schema_version    one row: version (of the file; the series tables are created here)

A reading's tenant, site, gateway and unit are its instrument's (ingest refuses a reading whose
topic disagrees with the registry and converts values to the registered unit), so they are read
from ``instruments`` through ``readings_full`` instead of being stored per reading: a narrow row
binds and writes about half the bytes (``docs/storage.md``, "Why readings are split").

The readings key is the identity ``(instrument_id, ts, seq)`` ordered time first: readings
arrive in time order, so a batch appends to the tail of the b-tree instead of touching one page
per instrument across the table (2-3x the insert rate with thousands of instruments; see
``docs/storage.md``). Per-instrument time ranges then scan the fleet's rows of the window; add
``readings_by_instrument ON readings (instrument_id, ts)`` where those panels are too slow.

Foreign keys are declared on the registry but not enforced here (``PRAGMA foreign_keys=OFF``):
checking every reading against ``instruments`` would cost a lookup per row on the hot path, and
ingest already refuses unknown instruments (``unknown_instrument``). PostgreSQL enforces them on
the registry tables; registration writes in their order (tenants, sites, instruments,
calibrations, curve points).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from metrology.health import SEVERITY
from storage.errors import SchemaVersionError

SCHEMA_VERSION = 3
"""Version of the store file as a whole: the series tables here; the registry tables inside it
carry their own Alembic revision (``alembic_version``) and are migrated on open."""
NO_DATA = "NO_DATA"
"""Status key of instruments that are registered but have no stored state yet."""
STATUS_KEYS: tuple[str, ...] = (*(s.value for s in SEVERITY), NO_DATA)
"""Keys of the status counts, most severe first; every key is present (zero when none)."""

SYNCHRONOUS_MODES = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})

CACHE_SIZE_KIB = 64 * 1024
BUSY_TIMEOUT_MS = 10_000

_SERIES = """
CREATE TABLE IF NOT EXISTS readings (
    ts             REAL NOT NULL,
    instrument_id  TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    value          REAL NOT NULL,
    corrected      REAL,
    certificate_id TEXT,
    status         TEXT NOT NULL,
    PRIMARY KEY (ts, instrument_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS residuals (
    ts             REAL NOT NULL,
    instrument_id  TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    reference      REAL,
    residual       REAL,
    u_residual     REAL,
    ewma           REAL,
    cusum_high     REAL,
    cusum_low      REAL,
    drift_rate     REAL,
    PRIMARY KEY (ts, instrument_id, seq)
) WITHOUT ROWID;
CREATE VIEW IF NOT EXISTS readings_full AS
    SELECT i.tenant AS tenant, i.site AS site, i.gateway AS gateway,
           r.instrument_id AS instrument_id, r.ts AS ts, r.value AS value, i.unit AS unit,
           r.seq AS seq, r.corrected AS corrected, r.certificate_id AS certificate_id,
           x.reference AS reference, x.residual AS residual, x.u_residual AS u_residual,
           x.ewma AS ewma, x.cusum_high AS cusum_high, x.cusum_low AS cusum_low,
           x.drift_rate AS drift_rate, r.status AS status, i.measurand AS measurand
    FROM readings AS r
    LEFT JOIN residuals AS x
        ON x.ts = r.ts AND x.instrument_id = r.instrument_id AND x.seq = r.seq
    LEFT JOIN instruments AS i ON i.instrument_id = r.instrument_id;
CREATE VIEW IF NOT EXISTS status_history AS
    SELECT id, ts, strftime('%Y-%m-%dT%H:%M:%fZ', ts, 'unixepoch') AS ts_utc,
           tenant, site, instrument_id, previous, status, reasons, numbers
    FROM alerts;
CREATE TABLE IF NOT EXISTS schema_version (
    version        INTEGER NOT NULL
);
"""


def configure(
    conn: sqlite3.Connection, synchronous: str, busy_timeout_ms: int = BUSY_TIMEOUT_MS
) -> None:
    """Connection pragmas: WAL (readers never block the writer), durability, caches."""
    mode = synchronous.upper()
    if mode not in SYNCHRONOUS_MODES:
        modes = sorted(SYNCHRONOUS_MODES)
        raise ValueError(f"synchronous must be one of {modes}, got {synchronous!r}")
    # How long a write waits for another writer's lock before it fails (and is retried).
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA journal_mode = WAL")
    # Set per connection (not stored in the file): FULL syncs the WAL on every commit, so a
    # committed batch survives power loss and may be acknowledged to the broker.
    conn.execute(f"PRAGMA synchronous = {mode}")
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute(f"PRAGMA cache_size = -{CACHE_SIZE_KIB}")


def create_schema(conn: sqlite3.Connection, migrate_registry: Callable[[], object]) -> int:
    """Create or check the store's schema in one transaction; return the schema version.

    ``migrate_registry`` brings the registry tables to the newest Alembic revision on the same
    connection (:func:`storage.registry.migrate.upgrade`, inside this transaction); the series
    tables and views are created here. Idempotent: opening an existing store changes nothing.
    A store written by another schema version (newer, or older: version 1 kept every number in
    one wide ``readings`` table, version 2 created its registry without migrations) is refused
    rather than touched.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = _stored_version(conn)
        if row is not None and row > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"database schema version {row} is newer than this calstream's ({SCHEMA_VERSION})"
            )
        if row is not None and row < SCHEMA_VERSION:
            raise SchemaVersionError(
                f"database schema version {row} is older than this calstream's "
                f"({SCHEMA_VERSION}) and is not migrated ({_CHANGES[row]}): move the file away "
                "to start a new store (the fleet is registered again from its file), or read it "
                "with the calstream version that wrote it"
            )
        migrate_registry()
        for statement in _statements(_SERIES):
            conn.execute(statement)
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            row = SCHEMA_VERSION
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return row


_CHANGES = {
    1: "version 2 split readings into readings and residuals",
    2: "version 3 keeps every calibration revision with its audit trail, curve corrections and "
    "keyed dead letters, in registry tables migrated by Alembic",
}


def _stored_version(conn: sqlite3.Connection) -> int | None:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if exists is None:
        return None
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT the surrounding transaction; run statements one by one instead.
    # No statement here contains a ';' inside a literal, so splitting on ';' is exact.
    return [s.strip() for s in script.split(";") if s.strip()]
