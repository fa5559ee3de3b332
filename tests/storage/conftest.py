"""Factories for the storage tests: a small two-tenant fleet, domain values, stores in tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from metrology.assessment import Assessment, HealthSnapshot, StatusChange
from metrology.batch import OutputBatch
from metrology.fleet import Fleet, load_fleet
from metrology.health import Status
from metrology.reading import Reading
from metrology.wire import DeadLetter, RejectReason
from storage.registry import SqlRegistry
from storage.sqlite_store import SqliteStore

T0 = 1_780_000_000.0
"""2026-05-28T20:26:40Z: an arbitrary fixed instant, so every expected number is exact."""


def _instrument(instrument_id: str, **overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": instrument_id,
        "measurand": "temperature",
        "unit": "degC",
        "range": {"low": 0, "high": 200},
        "tolerance": {"lower": -0.5, "upper": 0.5},
        "period_s": 60,
        "gateway": "gw-01",
        "reference": {"kind": "check_standard"},
        "calibrations": [
            {
                "certificate": f"CAL-{instrument_id}-1",
                "date": "2026-01-15T00:00:00Z",
                "correction": {"offset": 0.02, "gain": 1.0001},
                "expanded_uncertainty": 0.06,
                "k": 2,
                "interval_days": 365,
            }
        ],
    }
    document.update(overrides)
    return document


def fleet_document() -> dict[str, Any]:
    """acme: 2 sites, 4 instruments (5 certificates); globex: 1 site, 2; calprov: provider."""
    acme_north = [_instrument(f"acme-n-TT-00{i}") for i in (1, 2, 3)]
    acme_north[2]["calibrations"].append(
        {
            "certificate": "CAL-acme-n-TT-003-2",
            "date": "2026-06-01T00:00:00Z",
            "correction": {"offset": -0.01},
            "expanded_uncertainty": 0.05,
            "interval_days": 180,
        }
    )
    return {
        "fleet": "storage test fleet",
        "as_of": "2026-11-01T00:00:00Z",
        "tenants": [
            {
                "id": "acme",
                "name": "ACME Precision Parts",
                "sites": [
                    {"id": "north", "name": "North plant", "instruments": acme_north},
                    {
                        "id": "south",
                        "name": "South plant",
                        "instruments": [
                            _instrument(
                                "acme-s-PT-001",
                                measurand="pressure",
                                unit="bar",
                                range={"low": 0, "high": 10},
                                tolerance={"mpe": 0.01, "relative": 0.001},
                                reference={"kind": "none"},
                                description="line pressure",
                            )
                        ],
                    },
                ],
            },
            {
                "id": "globex",
                "name": "Globex",
                "sites": [
                    {
                        "id": "main",
                        "instruments": [_instrument("globex-TT-001"), _instrument("globex-TT-002")],
                    }
                ],
            },
            {"id": "calprov", "name": "Cal Provider", "kind": "calibration_provider",
             "clients": ["acme", "globex"]},
        ],
    }  # fmt: skip


@pytest.fixture
def fleet() -> Fleet:
    return load_fleet(fleet_document())


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "calstream.sqlite"


@pytest.fixture
def store(store_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(store_path)
    yield opened
    opened.close()


_PLACES = {
    "acme-n-TT-001": ("acme", "north"),
    "acme-n-TT-002": ("acme", "north"),
    "acme-n-TT-003": ("acme", "north"),
    "acme-s-PT-001": ("acme", "south"),
    "globex-TT-001": ("globex", "main"),
    "globex-TT-002": ("globex", "main"),
}


def place_of(instrument_id: str) -> tuple[str, str]:
    return _PLACES[instrument_id]


ReadingFactory = Callable[..., tuple[Reading, Assessment]]


@pytest.fixture
def make_reading() -> ReadingFactory:
    def make(
        instrument_id: str = "acme-n-TT-001",
        seq: int = 0,
        ts: float | None = None,
        value: float = 21.5,
        status: Status = Status.OK,
        reference: bool = True,
    ) -> tuple[Reading, Assessment]:
        """A reading of ``instrument_id`` in degC; with ``reference=False`` it has no reference
        and so no residual or drift numbers (most readings of check-standard instruments)."""
        tenant, site = place_of(instrument_id)
        ts = T0 + 60.0 * seq if ts is None else ts
        if not reference:
            reading = Reading(tenant, site, "gw-01", instrument_id, ts, value, "degC", seq)
            assessment = Assessment(
                instrument_id, ts, seq, value + 0.02, f"CAL-{instrument_id}-1", None, None, None,
                None, None, None, None, status,
            )  # fmt: skip
            return reading, assessment
        reading = Reading(tenant, site, "gw-01", instrument_id, ts, value, "degC", seq, 21.48, 0.01)
        assessment = Assessment(
            instrument_id, ts, seq, value + 0.02, f"CAL-{instrument_id}-1", 21.48,
            value + 0.02 - 21.48, 0.032, 0.01, 0.0, 0.0, 0.001, status,
        )  # fmt: skip
        return reading, assessment

    return make


@pytest.fixture
def make_snapshot() -> Callable[..., HealthSnapshot]:
    def make(
        instrument_id: str = "acme-n-TT-001",
        status: Status = Status.OK,
        evaluated_at: float = T0,
        numbers: dict[str, float | str | None] | None = None,
        conditions: tuple[Status, ...] | None = None,
    ) -> HealthSnapshot:
        tenant, site = place_of(instrument_id)
        return HealthSnapshot(
            instrument_id=instrument_id,
            tenant=tenant,
            site=site,
            status=status,
            conditions=(status,) if conditions is None else conditions,
            reasons=(f"{status.value.lower()} at {evaluated_at:.0f}",),
            evaluated_at=evaluated_at,
            last_reading_at=evaluated_at - 1.0,
            numbers={"residual": 0.02} if numbers is None else numbers,
        )

    return make


@pytest.fixture
def make_change() -> Callable[..., StatusChange]:
    def make(
        instrument_id: str = "acme-n-TT-001",
        ts: float = T0,
        status: Status = Status.DRIFTING,
        previous: Status | None = Status.OK,
    ) -> StatusChange:
        tenant, site = place_of(instrument_id)
        return StatusChange(
            instrument_id=instrument_id,
            tenant=tenant,
            site=site,
            ts=ts,
            previous=previous,
            status=status,
            reasons=(f"{status.value} since {ts:.0f}",),
            numbers={"residual": 0.3, "rule": "simple acceptance"},
        )

    return make


@pytest.fixture
def make_dead_letter() -> Callable[..., DeadLetter]:
    def make(
        reason: RejectReason = RejectReason.MALFORMED_JSON,
        count: int = 1,
        received_at: float = T0,
        tenant: str | None = "acme",
    ) -> DeadLetter:
        return DeadLetter(
            received_at=received_at,
            topic=f"calstream/v1/{tenant}/north/gw-01/readings",
            reason=reason,
            detail=f"{reason.value} in test",
            excerpt='{"v": 1, "readings": [',
            count=count,
            tenant=tenant,
            instrument_id=None,
            seq=None,
        )

    return make


@pytest.fixture
def t0() -> float:
    return T0


# --- registry operations: a clock the test moves, and the three registries ---


class Clock:
    """The operations' clock: ``now`` epoch seconds until the test moves it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


REGISTRY_TARGETS = ["sqlite-store", "registry-sqlite", "registry-postgres"]
"""Where the registry lives: the embedded store's file, a SQL registry on SQLite, on PostgreSQL."""

Registry = SqliteStore | SqlRegistry


@pytest.fixture(params=REGISTRY_TARGETS)
def registry(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Registry]:
    """Each registry in turn, with the test's clock."""
    opened: Registry
    if request.param == "sqlite-store":
        opened = SqliteStore(tmp_path / "store" / "calstream.sqlite", clock=clock)
    elif request.param == "registry-sqlite":
        opened = SqlRegistry(f"sqlite:///{tmp_path / 'registry.sqlite'}", clock=clock)
    else:
        opened = SqlRegistry(request.getfixturevalue("postgres").url, clock=clock)
    try:
        yield opened
    finally:
        opened.close()


def write_events(target: Registry, batch: OutputBatch) -> None:
    """Store a batch's states, status changes and dead letters (and readings, in a store)."""
    if isinstance(target, SqlRegistry):
        target.write_events(batch)
    else:
        target.write(batch)
