"""What the platform asks of a store, and of a series sink inside one.

A **store** is everything the pipeline and the command line talk to: it registers a fleet,
writes one pipeline batch durably, and answers the status queries. ``SqliteStore`` (embedded
default) is one. A production store combines a **series sink** (InfluxDB: readings, residuals,
health and alert series for the dashboards) with a **registry** (SQLite or PostgreSQL through
SQLAlchemy: instruments, calibrations, latest states, decisions, alerts, dead letters).

Every store passes the same contract tests (``tests/storage/test_store_contract.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from metrology.assessment import HealthSnapshot, StatusChange
from metrology.batch import OutputBatch
from metrology.fleet import Fleet
from metrology.wire import DeadLetter
from storage.batch import WriteResult


@runtime_checkable
class Store(Protocol):
    """The pipeline's and the command line's view of storage."""

    def register_fleet(self, fleet: Fleet) -> None:
        """Upsert tenants, sites, instruments and calibrations of ``fleet``."""

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
