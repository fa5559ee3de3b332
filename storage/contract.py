"""What the platform asks of a store, and of a series sink inside one.

A **store** is everything the pipeline and the command line talk to: it registers a fleet,
writes one pipeline batch durably, and answers the status queries. ``SqliteStore`` (embedded
default) is one. A production store combines a **series sink** (InfluxDB: readings, residuals,
health and alert series for the dashboards) with a **registry** (SQLite or PostgreSQL through
SQLAlchemy: instruments, calibrations, latest states, decisions, alerts, dead letters).

Every store passes the same contract tests (``tests/storage/test_store_contract.py``).

The people's side (DESIGN.md): a store carries the registry operations (``operations``:
tenants, sites, gateways, instruments, certificates, contracts, tokens, each one audited
transaction; :mod:`storage.registry.operations`) and answers the reads the API serves, each
confined to the caller's :class:`~metrology.tenancy.Scope` in SQL. The unscoped queries above
them are the platform's own (``calstream status`` runs on the server: the local scope).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from metrology.assessment import HealthSnapshot, StatusChange
from metrology.batch import OutputBatch
from metrology.calibration import CalibrationHistory
from metrology.fleet import Fleet
from metrology.tenancy import Scope
from metrology.wire import DeadLetter
from storage.batch import WriteResult
from storage.registry.operations import RegistryOperations
from storage.registry.records import Cursor, DueEntry, InstrumentRecord, Page, SeriesBucket
from storage.registry.scoped import FleetHealth


@runtime_checkable
class Store(Protocol):
    """The pipeline's and the command line's view of storage."""

    @property
    def operations(self) -> RegistryOperations:
        """The registry operations on this store's registry."""
        ...

    def register_fleet(self, fleet: Fleet) -> int:
        """Register ``fleet`` through the registry operations as the local principal, in one
        transaction, idempotently; returns the number of changes (0: nothing was new)."""
        ...

    def write(self, batch: OutputBatch) -> WriteResult:
        """Write one batch; on return it is durable (the pipeline then acknowledges it).

        Idempotent: a re-delivered reading (same instrument, time and sequence) does not add a
        reading, a re-delivered status change is stored once. Raises ``StorageError`` when the
        store cannot take the batch (the pipeline retries).
        """

    def close(self) -> None: ...

    def snapshots(self, tenant: str | None = None) -> list[HealthSnapshot]: ...

    def counts_by_status(self, tenant: str | None = None) -> dict[str, int]: ...

    def counts_by_site(self) -> dict[tuple[str, str], dict[str, int]]: ...

    def worst_instruments(
        self, limit: int = 10, tenant: str | None = None
    ) -> list[HealthSnapshot]: ...

    def reading_count(self) -> int: ...

    def dead_letter_count(self) -> int: ...

    def dead_letters_by_reason(self) -> dict[str, int]: ...

    def recent_dead_letters(self, limit: int = 20) -> list[DeadLetter]: ...

    def alerts(self, limit: int = 50, tenant: str | None = None) -> list[StatusChange]: ...

    def alert_count(self) -> int: ...

    def registered_instruments(self) -> int: ...

    def calibration_history(self, instrument_id: str) -> CalibrationHistory: ...

    # --- the reads the API serves, confined to the caller's scope ---

    def fleet_health(self, scope: Scope, worst: int = 10, tenant: str | None = None) -> FleetHealth:
        """Instruments by status (every key) and the ``worst`` most severe snapshots."""
        ...

    def instrument_health(self, scope: Scope, instrument_id: str) -> HealthSnapshot | None:
        """The latest health with the numbers behind it (None: registered, no data yet)."""
        ...

    def instrument_series(
        self, scope: Scope, instrument_id: str, start: float, end: float, max_points: int = 500
    ) -> list[SeriesBucket]:
        """Readings and residuals in ``[start, end)``, downsampled to at most ``max_points``
        time buckets by the database. ``UnsupportedQuery`` where the series store cannot yet."""
        ...

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
        """Status changes, newest first; ``after`` is the previous page's ``next`` cursor."""
        ...

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
        """Dead letters, newest first, a page at a time (keyset on received time and id)."""
        ...

    def due_list(
        self,
        scope: Scope,
        *,
        tenant: str | None = None,
        due_before: float | None = None,
        limit: int = 100,
    ) -> list[DueEntry]:
        """Instruments by calibration due date (never calibrated first)."""
        ...

    def instruments(
        self, scope: Scope, *, tenant: str | None = None, include_retired: bool = False
    ) -> list[InstrumentRecord]: ...

    def calibrations(self, scope: Scope, instrument_id: str) -> CalibrationHistory:
        """Every revision of every certificate of the instrument (the audit trail, curves)."""
        ...


@runtime_checkable
class SeriesSink(Protocol):
    """Where the time series go (InfluxDB line protocol): one call per pipeline batch."""

    def register_fleet(self, fleet: Fleet) -> None:
        """Learn the fleet the points describe (for example each instrument's measurand tag)."""

    def seed_statuses(self, snapshots: Iterable[HealthSnapshot]) -> None:
        """Start from the latest states the registry holds (series derived from all of them,
        such as per-site status counts, stay right across a restart)."""

    def write_series(self, batch: OutputBatch) -> int:
        """Write the batch's series points; return the number of points the server accepted.

        Returns only once the server has accepted them (HTTP 204), so the pipeline may
        acknowledge; raises ``StorageError`` when it cannot. A point written twice (same
        measurement, tags and timestamp) overwrites itself.
        """

    def reading_count(self) -> int:
        """Readings stored (each identity once), read back from the server."""

    def close(self) -> None: ...
