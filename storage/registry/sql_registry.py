"""The registry on SQLite or PostgreSQL through SQLAlchemy: ``SqlRegistry(url)``.

Opening migrates the database to the newest revision (Alembic, :mod:`storage.registry.migrate`).
URLs: ``sqlite:///path/registry.sqlite`` (folders are created; WAL, like the embedded store) or
``postgresql://user@host:port/db`` (the ``psycopg`` 3 driver is used; ``postgresql+psycopg://``
works too). Every method runs in one transaction and raises :class:`StorageError` (the database
error chained) when the database cannot be reached; connections are checked before use, so the
registry recovers by itself once a restarted server is back.

``operations`` (:class:`~storage.registry.operations.RegistryOperations`) are the people's
changes to the registry (tenants, sites, gateways, instruments, certificates, contracts, tokens),
audited; ``register_fleet`` goes through them. The scoped reads (``fleet_health``,
``status_history``, ...; :mod:`storage.registry.scoped`) take the caller's scope.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from metrology.assessment import HealthSnapshot, StatusChange
from metrology.batch import OutputBatch
from metrology.calibration import CalibrationHistory
from metrology.fleet import Fleet
from metrology.tenancy import Scope
from metrology.wire import DeadLetter
from storage.errors import StorageError
from storage.registry import migrate, queries, scoped, writes
from storage.registry.operations import RegistryOperations
from storage.registry.records import Cursor, DueEntry, InstrumentRecord, Page
from storage.schema import BUSY_TIMEOUT_MS, configure

_T = TypeVar("_T")

_WRITE = "calstream_write"
"""Execution option: this SQLite transaction writes (``BEGIN IMMEDIATE``, no lock upgrade)."""


def engine_url(url: str) -> str:
    """``url`` with calstream's driver for each database: ``psycopg`` (3) for PostgreSQL."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StorageError(
            f"registry URL {url!r} is not a database URL (sqlite:///path or postgresql://...)"
        ) from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StorageError(
            f"registry URL {parsed.render_as_string(hide_password=True)!r}: the registry runs "
            "on sqlite:///path or postgresql://user@host/db"
        )
    return parsed.render_as_string(hide_password=False)


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        # The driver's own transaction handling off: transactions are begun below.
        dbapi_connection.isolation_level = None
        configure(dbapi_connection, "FULL", BUSY_TIMEOUT_MS)

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


class SqlRegistry:
    """Tenants, sites, instruments, calibration revisions, latest states, alerts, dead letters."""

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        self.url = engine_url(url)
        self.safe_url = make_url(self.url).render_as_string(hide_password=True)
        try:
            if make_url(self.url).get_backend_name() == "sqlite":
                self._engine = _sqlite_engine(self.url)
            else:
                self._engine = create_engine(self.url, pool_pre_ping=True)
        except (OSError, SQLAlchemyError) as exc:
            raise StorageError(f"cannot open registry {self.safe_url}: {exc}") from exc
        try:
            self.revision = self._write("migrate", migrate.upgrade)
        except BaseException:
            self._engine.dispose()
            raise
        self.operations = RegistryOperations(self.transact, clock)

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            raise StorageError(f"{what} on {self.safe_url} failed: {exc}") from exc

    def _write(self, what: str, work: Callable[..., _T], *args: Any) -> _T:
        with self._errors(what), self._engine.connect() as connection:
            connection = connection.execution_options(**{_WRITE: True})
            with connection.begin():
                return work(connection, *args)

    def _read(self, work: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        with (
            self._errors(work.__name__),
            self._engine.connect() as connection,
            connection.begin(),
        ):
            return work(connection, *args, **kwargs)

    def transact(self, what: str, work: Callable[[Connection], _T], *, write: bool) -> _T:
        """``work`` in one transaction (a writing one when ``write``): the operations' runner."""
        if write:
            return self._write(what, work)
        with self._errors(what), self._engine.connect() as connection, connection.begin():
            return work(connection)

    # --- writing ---

    def register_fleet(self, fleet: Fleet) -> int:
        """Register ``fleet`` through the registry operations (the local principal, one
        transaction, idempotent); returns the number of changes made."""
        return self.operations.register_fleet(fleet)

    def write_events(self, batch: OutputBatch) -> tuple[int, int]:
        """Store a batch's latest states, status changes and dead letters in one transaction.

        The readings are not the registry's (they go to the series sink). Returns the status
        changes and dead letters newly stored: both are keyed, so writing a batch again stores
        nothing new, and an older snapshot never replaces a newer state.
        """
        if not (batch.snapshots or batch.changes or batch.dead_letters):
            return 0, 0
        return self._write("write states, changes and dead letters", _write_events, batch)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> SqlRegistry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- queries ---

    def snapshots(self, tenant: str | None = None) -> list[HealthSnapshot]:
        return self._read(queries.snapshots, tenant)

    def counts_by_status(self, tenant: str | None = None) -> dict[str, int]:
        return self._read(queries.counts_by_status, tenant)

    def counts_by_site(self) -> dict[tuple[str, str], dict[str, int]]:
        return self._read(queries.counts_by_site)

    def worst_instruments(self, limit: int = 10, tenant: str | None = None) -> list[HealthSnapshot]:
        return self._read(queries.worst_instruments, limit, tenant)

    def dead_letter_count(self) -> int:
        return self._read(queries.dead_letter_count)

    def dead_letters_by_reason(self) -> dict[str, int]:
        return self._read(queries.dead_letters_by_reason)

    def recent_dead_letters(self, limit: int = 20) -> list[DeadLetter]:
        return self._read(queries.recent_dead_letters, limit)

    def alerts(self, limit: int = 50, tenant: str | None = None) -> list[StatusChange]:
        return self._read(queries.alerts, limit, tenant)

    def alert_count(self) -> int:
        return self._read(queries.alert_count)

    def registered_instruments(self) -> int:
        return self._read(queries.registered_instruments)

    def calibration_history(self, instrument_id: str) -> CalibrationHistory:
        """Every registered revision of the instrument's certificates (audit trail, curves)."""
        return self._read(queries.calibration_history, instrument_id)

    # --- scoped reads (storage.registry.scoped) ---

    def fleet_health(
        self, scope: Scope, worst: int = 10, tenant: str | None = None
    ) -> scoped.FleetHealth:
        return self._read(scoped.fleet_health, scope, worst, tenant)

    def instrument_health(self, scope: Scope, instrument_id: str) -> HealthSnapshot | None:
        return self._read(scoped.instrument_health, scope, instrument_id)

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
        return self._read(scoped.due_list, scope, tenant=tenant, due_before=due_before, limit=limit)

    def instruments(
        self, scope: Scope, *, tenant: str | None = None, include_retired: bool = False
    ) -> list[InstrumentRecord]:
        return self._read(
            scoped.instrument_list, scope, tenant=tenant, include_retired=include_retired
        )

    def calibrations(self, scope: Scope, instrument_id: str) -> CalibrationHistory:
        return self._read(scoped.calibration_history, scope, instrument_id)


def _write_events(connection: Connection, batch: OutputBatch) -> tuple[int, int]:
    writes.write_snapshots(connection, batch.snapshots)
    changes = writes.write_changes(connection, batch.changes)
    dead = writes.write_dead_letters(connection, batch.dead_letters)
    return changes, dead
