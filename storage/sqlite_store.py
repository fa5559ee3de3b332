"""The embedded store: SQLite in WAL mode, one transaction per pipeline batch.

Grafana (``frser-sqlite-datasource``) and ``calstream status`` read the same file while the
pipeline writes: in WAL mode readers see the last committed batch and never block the writer.
The tables are described in :mod:`storage.schema` and ``docs/storage.md``.

Single writer: one :class:`SqliteStore` per database file writes, from one pipeline. The
connection is opened with ``check_same_thread=False`` and every method holds a lock, so the
store may be shared by the pipeline thread and, say, a status thread; but a second writing
*process* would only wait on SQLite's lock (``busy_timeout``) and gain nothing.

Durability: with ``synchronous="FULL"`` (the default) a batch whose :meth:`SqliteStore.write`
has returned survives power loss, so the pipeline may acknowledge its messages to the broker.
``"NORMAL"`` is faster but may lose the last batches on power loss (never on a process crash).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, create_engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from metrology.assessment import HealthSnapshot, StatusChange
from metrology.batch import OutputBatch
from metrology.calibration import CalibrationHistory
from metrology.fleet import Fleet
from metrology.tenancy import Scope
from metrology.wire import DeadLetter
from storage import queries
from storage.batch import WriteResult
from storage.errors import StorageError
from storage.registry import migrate, scoped
from storage.registry import queries as registry_queries
from storage.registry.operations import RegistryOperations
from storage.registry.records import Cursor, DueEntry, InstrumentRecord, Page, SeriesBucket
from storage.rows import (
    ALERT_COLUMNS,
    DEAD_LETTER_KEYED_COLUMNS,
    READING_COLUMNS,
    RESIDUAL_COLUMNS,
    STATE_COLUMNS,
    change_row,
    dead_letter_rows,
    reading_rows,
    snapshot_row,
)
from storage.schema import BUSY_TIMEOUT_MS, configure, create_schema

_T = TypeVar("_T")


def _insert(table: str, columns: tuple[str, ...], verb: str = "INSERT") -> str:
    return f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


ROWS_PER_STATEMENT = 50
"""Rows per multi-row ``INSERT ... VALUES (...), (...), ...`` on the readings path.

One ``sqlite3_step`` (and one trip through :mod:`sqlite3`'s per-row machinery: statement reset,
GIL hand-over, SQLite's connection mutex) per 50 rows instead of per row: about a quarter fewer
instructions per reading than ``executemany`` of single-row statements (callgrind, see
``docs/storage.md``); 20 to 100 rows measure alike. 50 rows x 10 columns stays below the 999
parameters of SQLite builds older than 3.32.
"""


@lru_cache(maxsize=256)
def _insert_rows_sql(table: str, columns: tuple[str, ...], rows: int) -> str:
    row = f"({', '.join('?' * len(columns))})"
    return f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES {', '.join([row] * rows)}"


def _insert_rows(
    conn: sqlite3.Connection, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """``INSERT OR IGNORE`` every row, :data:`ROWS_PER_STATEMENT` rows per statement."""
    size = ROWS_PER_STATEMENT
    full = len(rows) - len(rows) % size
    if full:
        conn.executemany(
            _insert_rows_sql(table, columns, size),
            [tuple(chain.from_iterable(rows[i : i + size])) for i in range(0, full, size)],
        )
    if full < len(rows):
        rest = rows[full:]
        conn.execute(_insert_rows_sql(table, columns, len(rest)), tuple(chain.from_iterable(rest)))


_INSERT_ALERT = _insert("alerts", ALERT_COLUMNS, "INSERT OR IGNORE")
# Keyed (storage.rows.dead_letter_rows): a batch written again stores no dead letter twice.
_INSERT_DEAD_LETTER = _insert("dead_letters", DEAD_LETTER_KEYED_COLUMNS, "INSERT OR IGNORE")
# A snapshot older than the stored one (a re-delivered batch) does not roll the state back.
_UPSERT_STATE = (
    _insert("instrument_state", STATE_COLUMNS)
    + " ON CONFLICT (instrument_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in STATE_COLUMNS[1:])
    + " WHERE excluded.evaluated_at >= instrument_state.evaluated_at"
)


class SqliteStore:
    """Readings, latest health, alerts, dead letters and the registry in one SQLite file."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path if str(path) == ":memory:" else Path(path)
        self._lock = threading.Lock()
        try:
            if isinstance(self.path, Path):
                self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: no implicit transactions; write() opens its own.
            self._conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open store {self.path}: {exc}") from exc
        # The registry's SQLAlchemy code (migrations, registration, queries) runs on this same
        # connection, so the store stays one connection, one lock, one writer.
        conn = self._conn
        self._engine = create_engine("sqlite://", creator=lambda: conn, poolclass=StaticPool)
        try:
            configure(self._conn, synchronous, busy_timeout_ms)
            with self._engine.connect() as registry:
                self.schema_version = create_schema(
                    self._conn, lambda: _migrate_in_open_transaction(registry)
                )
        except (sqlite3.Error, SQLAlchemyError) as exc:
            self._close()
            raise StorageError(f"cannot prepare store {self.path}: {exc}") from exc
        except BaseException:
            self._close()
            raise
        self.operations = RegistryOperations(self.transact, clock)
        """The registry operations (tenants, instruments, certificates, ...) on this file."""

    # --- writing ---

    def transact(self, what: str, work: Callable[[Connection], _T], *, write: bool) -> _T:
        """``work`` on the store's connection in one transaction (``BEGIN IMMEDIATE`` when it
        writes): the runner of the registry operations, with the store's lock held."""
        with self._lock, self._registry_errors(what), self._engine.connect() as connection:
            self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            # SQLAlchemy's begin is no statement on this driver: the transaction is the one
            # just opened, and commit() / rollback() end it.
            transaction = connection.begin()
            try:
                result = work(connection)
            except BaseException:
                transaction.rollback()
                raise
            transaction.commit()
            return result

    def register_fleet(self, fleet: Fleet) -> int:
        """Register ``fleet`` through the registry operations, on this file: the local
        principal, one transaction, idempotent; returns the number of changes made."""
        return self.operations.register_fleet(fleet)

    def write(self, batch: OutputBatch) -> WriteResult:
        """Write one batch in ONE transaction and return exact counts; raises :class:`StorageError`.

        Readings already stored under the same ``(instrument_id, ts, seq)`` are ignored and
        counted as duplicates, so re-delivery is harmless. On return the batch is committed.
        """
        if not len(batch):
            return WriteResult(0, 0, 0, 0)
        what = (
            f"write {len(batch.readings)} readings, {len(batch.snapshots)} snapshots, "
            f"{len(batch.changes)} changes, {len(batch.dead_letters)} dead letters"
        )
        return self._in_transaction(what, self._write, batch)

    def _write(self, conn: sqlite3.Connection, batch: OutputBatch) -> WriteResult:
        inserted = changes = dead = 0
        if batch.readings:
            rows, residuals = reading_rows(batch.readings)
            before = conn.total_changes
            _insert_rows(conn, "readings", READING_COLUMNS, rows)
            inserted = conn.total_changes - before
            # A re-delivered reading is ignored in both tables (whether it has a residuals row is
            # a property of its message: its reference); duplicates are counted on readings.
            _insert_rows(conn, "residuals", RESIDUAL_COLUMNS, residuals)
        if batch.snapshots:
            conn.executemany(_UPSERT_STATE, [snapshot_row(s) for s in batch.snapshots])
        if batch.changes:
            before = conn.total_changes
            conn.executemany(_INSERT_ALERT, [change_row(c) for c in batch.changes])
            changes = conn.total_changes - before
        if batch.dead_letters:
            before = conn.total_changes
            conn.executemany(_INSERT_DEAD_LETTER, dead_letter_rows(batch.dead_letters))
            dead = conn.total_changes - before
        return WriteResult(inserted, len(batch.readings) - inserted, changes, dead)

    def _in_transaction(
        self, what: str, work: Callable[[sqlite3.Connection, Any], _T], argument: Any
    ) -> _T:
        with self._lock:
            conn = self._conn
            try:
                # IMMEDIATE takes the write lock up front: no deadlock-prone upgrade mid-batch.
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(conn, argument)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StorageError(f"{what} in {self.path} failed: {exc}") from exc
            return result

    def close(self) -> None:
        """Close the connection (the last connection to close also checkpoints the WAL)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        self._engine.dispose()
        self._conn.close()

    @contextmanager
    def _registry_errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except (sqlite3.Error, SQLAlchemyError) as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise StorageError(f"{what} in {self.path} failed: {exc}") from exc

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- queries ---

    def _read(self, query: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """A registry query (:mod:`storage.registry.queries`) on this store's connection."""
        what = query.__name__
        with self._lock, self._registry_errors(what), self._engine.connect() as connection:
            return query(connection, *args, **kwargs)

    def snapshots(self, tenant: str | None = None) -> list[HealthSnapshot]:
        """Latest health of every instrument with stored state (of ``tenant`` only, if given)."""
        return self._read(registry_queries.snapshots, tenant)

    def counts_by_status(self, tenant: str | None = None) -> dict[str, int]:
        """Status -> number of instruments; every status key present, ``NO_DATA`` for never seen."""
        return self._read(registry_queries.counts_by_status, tenant)

    def counts_by_site(self) -> dict[tuple[str, str], dict[str, int]]:
        """(tenant, site) -> status -> number of instruments (keys as :meth:`counts_by_status`)."""
        return self._read(registry_queries.counts_by_site)

    def worst_instruments(self, limit: int = 10, tenant: str | None = None) -> list[HealthSnapshot]:
        """Most severe first (``metrology.health.SEVERITY``), then the most recent status change."""
        return self._read(registry_queries.worst_instruments, limit, tenant)

    def reading_count(self) -> int:
        with self._lock:
            try:
                return queries.reading_count(self._conn)
            except sqlite3.Error as exc:
                raise StorageError(f"reading_count on {self.path} failed: {exc}") from exc

    def dead_letter_count(self) -> int:
        """Sum of the dead letters' counts (readings or messages refused)."""
        return self._read(registry_queries.dead_letter_count)

    def dead_letters_by_reason(self) -> dict[str, int]:
        """Reject reason -> sum of counts."""
        return self._read(registry_queries.dead_letters_by_reason)

    def recent_dead_letters(self, limit: int = 20) -> list[DeadLetter]:
        """Newest first (by ``received_at``)."""
        return self._read(registry_queries.recent_dead_letters, limit)

    def alerts(self, limit: int = 50, tenant: str | None = None) -> list[StatusChange]:
        """Status changes, newest first."""
        return self._read(registry_queries.alerts, limit, tenant)

    def alert_count(self) -> int:
        return self._read(registry_queries.alert_count)

    def registered_instruments(self) -> int:
        return self._read(registry_queries.registered_instruments)

    def calibration_history(self, instrument_id: str) -> CalibrationHistory:
        """Every registered revision of the instrument's certificates (audit trail, curves)."""
        return self._read(registry_queries.calibration_history, instrument_id)

    # --- scoped reads (storage.registry.scoped; the series here) ---

    def fleet_health(
        self, scope: Scope, worst: int = 10, tenant: str | None = None
    ) -> scoped.FleetHealth:
        """Instruments by status and the ``worst`` most severe, of the tenants ``scope`` reads."""
        return self._read(scoped.fleet_health, scope, worst, tenant)

    def instrument_health(self, scope: Scope, instrument_id: str) -> HealthSnapshot | None:
        """The instrument's latest health with its numbers (None: registered, no data yet)."""
        return self._read(scoped.instrument_health, scope, instrument_id)

    def instrument_series(
        self, scope: Scope, instrument_id: str, start: float, end: float, max_points: int = 500
    ) -> list[SeriesBucket]:
        """Readings and residuals of the instrument in ``[start, end)``, at most ``max_points``
        (time buckets computed in SQL; :func:`storage.queries.instrument_series`)."""

        def read(connection: Connection) -> list[SeriesBucket]:
            scoped.visible_instrument(connection, scope, instrument_id)
            return queries.instrument_series(connection, instrument_id, start, end, max_points)

        read.__name__ = "instrument_series"
        return self._read(read)

    def status_history(
        self,
        scope: Scope,
        *,
        instrument_id: str | None = None,
        tenant: str | None = None,
        start: float | None = None,
        end: float | None = None,
        limit: int = 100,
        after: Cursor | None = None,
    ) -> Page[StatusChange]:
        """Status changes in ``[start, end)``, newest first, a page at a time (keyset)."""
        return self._read(
            scoped.status_history, scope, instrument_id=instrument_id, tenant=tenant,
            start=start, end=end, limit=limit, after=after,
        )  # fmt: skip

    def dead_letters(
        self,
        scope: Scope,
        *,
        tenant: str | None = None,
        start: float | None = None,
        end: float | None = None,
        limit: int = 100,
        after: Cursor | None = None,
    ) -> Page[DeadLetter]:
        """Dead letters received in ``[start, end)``, newest first, a page at a time."""
        return self._read(
            scoped.dead_letter_page, scope, tenant=tenant, start=start, end=end, limit=limit,
            after=after,
        )  # fmt: skip

    def due_list(
        self,
        scope: Scope,
        *,
        tenant: str | None = None,
        due_before: float | None = None,
        limit: int = 100,
    ) -> list[DueEntry]:
        """Instruments by calibration due date, never calibrated first."""
        return self._read(scoped.due_list, scope, tenant=tenant, due_before=due_before, limit=limit)

    def instruments(
        self, scope: Scope, *, tenant: str | None = None, include_retired: bool = False
    ) -> list[InstrumentRecord]:
        """Registered instruments the scope reads (retired ones when asked)."""
        return self._read(
            scoped.instrument_list, scope, tenant=tenant, include_retired=include_retired
        )

    def calibrations(self, scope: Scope, instrument_id: str) -> CalibrationHistory:
        """Every revision of the instrument's certificates, if the scope reads it."""
        return self._read(scoped.calibration_history, scope, instrument_id)


def _migrate_in_open_transaction(connection: Connection) -> None:
    """Alembic on the store's connection, inside the transaction ``create_schema`` opened.

    Begun on the SQLAlchemy side too, so Alembic sees an external transaction and leaves the
    commit to ``create_schema``; ``create_schema`` commits or rolls back the connection, which
    ends this (statement-less) transaction as well.
    """
    connection.begin()
    migrate.upgrade(connection)
