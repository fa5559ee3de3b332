"""The production store: a series sink (InfluxDB) beside a SQL registry (PostgreSQL or SQLite).

``CompositeStore(series, registry)`` is a :class:`storage.contract.Store`:

- ``write(batch)`` hands the whole batch to the series sink first (readings and residuals, and
  the health, alert and dead-letter series the dashboards draw), then writes the batch's latest
  states, status changes and dead letters to the registry in one registry transaction. It
  returns only when both have accepted it, so the pipeline may acknowledge. If either raises
  :class:`StorageError`, the pipeline writes the same batch again: the sink's points overwrite
  themselves (same measurement, tags and time), status changes are unique on (instrument, time,
  status), dead letters are keyed on their content (:func:`storage.rows.dead_letter_rows`), and
  an older snapshot never replaces a newer state, so nothing is stored twice.
- ``register_fleet`` upserts the registry and tells the sink the fleet (the readings' measurand)
  and the registry's latest states (so the sink's per-site status counts survive a restart).
- The status queries are answered by the registry; ``reading_count`` by the sink.
- ``operations`` are the registry's (:class:`~storage.registry.operations.RegistryOperations`),
  and so are the scoped reads, except ``instrument_series``: reading series back from InfluxDB
  (InfluxQL ``GROUP BY time(...)``; VictoriaMetrics speaks only PromQL) is not built yet, so it
  checks the caller's scope and then raises :class:`~storage.errors.UnsupportedQuery`.

What :class:`WriteResult` means here: a sink that overwrites cannot tell a new reading from a
re-delivered one without reading it back first (which would halve the write rate), so
``readings_inserted`` is the number of readings the sink accepted in this call and
``readings_duplicate`` is always 0. A re-delivered reading is therefore counted again by the
pipeline's ``stored`` counter, but stored once: :meth:`reading_count` (read back from the
server) is the exact figure. ``changes`` and ``dead_letters`` are exact (newly stored rows).
"""

from __future__ import annotations

from metrology.assessment import HealthSnapshot, StatusChange
from metrology.batch import OutputBatch
from metrology.calibration import CalibrationHistory
from metrology.fleet import Fleet
from metrology.tenancy import Scope
from metrology.wire import DeadLetter
from storage.batch import WriteResult
from storage.contract import SeriesSink
from storage.errors import UnsupportedQuery
from storage.registry import SqlRegistry
from storage.registry.operations import RegistryOperations
from storage.registry.records import Cursor, DueEntry, InstrumentRecord, Page, SeriesBucket
from storage.registry.scoped import FleetHealth


class CompositeStore:
    """Series to a :class:`SeriesSink`, registry and events to a :class:`SqlRegistry`."""

    def __init__(self, series: SeriesSink, registry: SqlRegistry) -> None:
        self.series = series
        self.registry = registry

    # --- writing ---

    @property
    def operations(self) -> RegistryOperations:
        return self.registry.operations

    def register_fleet(self, fleet: Fleet) -> int:
        """Register in the registry, then tell the sink the fleet and the stored latest states;
        returns the number of registry changes made."""
        changes = self.registry.register_fleet(fleet)
        self.series.register_fleet(fleet)
        self.series.seed_statuses(self.registry.snapshots())
        return changes

    def write(self, batch: OutputBatch) -> WriteResult:
        """Series first, then the registry; both accepted on return (see the module docstring)."""
        if not len(batch):
            return WriteResult(0, 0, 0, 0)
        self.series.write_series(batch)
        changes, dead = self.registry.write_events(batch)
        return WriteResult(len(batch.readings), 0, changes, dead)

    def close(self) -> None:
        try:
            self.series.close()
        finally:
            self.registry.close()

    def __enter__(self) -> CompositeStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- queries ---

    def reading_count(self) -> int:
        """Readings stored, each once, as the series server counts them."""
        return self.series.reading_count()

    def snapshots(self, tenant: str | None = None) -> list[HealthSnapshot]:
        return self.registry.snapshots(tenant)

    def counts_by_status(self, tenant: str | None = None) -> dict[str, int]:
        return self.registry.counts_by_status(tenant)

    def counts_by_site(self) -> dict[tuple[str, str], dict[str, int]]:
        return self.registry.counts_by_site()

    def worst_instruments(self, limit: int = 10, tenant: str | None = None) -> list[HealthSnapshot]:
        return self.registry.worst_instruments(limit, tenant)

    def dead_letter_count(self) -> int:
        return self.registry.dead_letter_count()

    def dead_letters_by_reason(self) -> dict[str, int]:
        return self.registry.dead_letters_by_reason()

    def recent_dead_letters(self, limit: int = 20) -> list[DeadLetter]:
        return self.registry.recent_dead_letters(limit)

    def alerts(self, limit: int = 50, tenant: str | None = None) -> list[StatusChange]:
        return self.registry.alerts(limit, tenant)

    def alert_count(self) -> int:
        return self.registry.alert_count()

    def registered_instruments(self) -> int:
        return self.registry.registered_instruments()

    def calibration_history(self, instrument_id: str) -> CalibrationHistory:
        return self.registry.calibration_history(instrument_id)

    # --- scoped reads ---

    def fleet_health(self, scope: Scope, worst: int = 10, tenant: str | None = None) -> FleetHealth:
        return self.registry.fleet_health(scope, worst, tenant)

    def instrument_health(self, scope: Scope, instrument_id: str) -> HealthSnapshot | None:
        return self.registry.instrument_health(scope, instrument_id)

    def instrument_series(
        self, scope: Scope, instrument_id: str, start: float, end: float, max_points: int = 500
    ) -> list[SeriesBucket]:
        """Not yet from InfluxDB: the scope is checked, then :class:`UnsupportedQuery`."""
        self.registry.instrument_health(scope, instrument_id)  # refuses what is out of scope
        raise UnsupportedQuery(
            f"instrument_series({instrument_id!r}) from {type(self.series).__name__}: reading "
            "series back from InfluxDB is not built yet; the dashboards read them (InfluxQL), "
            "and the embedded store (sqlite:///) answers this query"
        )

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
        return self.registry.status_history(
            scope, instrument_id=instrument_id, tenant=tenant, start=start, end=end, limit=limit,
            after=after,
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
        return self.registry.dead_letters(
            scope, tenant=tenant, start=start, end=end, limit=limit, after=after
        )

    def due_list(
        self,
        scope: Scope,
        *,
        tenant: str | None = None,
        due_before: float | None = None,
        limit: int = 100,
    ) -> list[DueEntry]:
        return self.registry.due_list(scope, tenant=tenant, due_before=due_before, limit=limit)

    def instruments(
        self, scope: Scope, *, tenant: str | None = None, include_retired: bool = False
    ) -> list[InstrumentRecord]:
        return self.registry.instruments(scope, tenant=tenant, include_retired=include_retired)

    def calibrations(self, scope: Scope, instrument_id: str) -> CalibrationHistory:
        return self.registry.calibrations(scope, instrument_id)
