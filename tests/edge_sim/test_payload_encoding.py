"""Simulator batches survive the wire contract, and the fast timestamp text is exact."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from edge_sim.simulator import FleetSimulator
from ingest.decoders.json_v1 import decode
from metrology.fleet import Fleet
from metrology.reading import Reading
from metrology.timebase import iso
from metrology.wire import encode, readings_topic


@pytest.fixture(scope="module")
def batches(shipped_fleet: Fleet) -> list:
    assert shipped_fleet.as_of is not None
    simulator = FleetSimulator(
        shipped_fleet, 7, shipped_fleet.as_of - 15 * 86_400.0, shipped_fleet.as_of
    )
    return list(simulator)


def test_simulator_batches_round_trip_through_the_wire(batches: list) -> None:
    units = set()
    references = 0
    for tenant, site, gateway, readings in batches:
        decoded = decode(
            readings_topic(tenant, site, gateway), encode(tenant, site, gateway, readings)
        )
        assert decoded.rejections == []
        assert decoded.readings == readings
        units.update(r.unit for r in readings)
        references += sum(r.reference is not None for r in readings)
    assert references > 0 and len(units) >= 8


def test_encode_refuses_non_finite_values() -> None:
    bad = Reading("t", "s", "g", "i-1", 0.0, float("nan"), "V", 1)
    with pytest.raises(ValueError):
        encode("t", "s", "g", [bad])


@pytest.mark.parametrize(
    "epoch",
    [
        0.0,
        1.0,
        59.0,
        86_399.0,
        86_400.0,
        -1.0,
        951_782_400.0,
        1_793_491_200.0,
        4_102_444_800.0,
        1_793_491_200.123,
        1_793_491_200.9995,
        1e9 + 0.0005,
        -0.5,
    ],
)
def test_iso_fast_path_matches_datetime(epoch: float) -> None:
    assert iso(epoch) == _reference_iso(epoch)


def _reference_iso(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def test_iso_matches_datetime_on_many_times() -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    for epoch in np.concatenate(
        [rng.integers(0, 4_000_000_000, 20_000).astype(float), rng.uniform(0, 4e9, 20_000)]
    ).tolist():
        assert iso(epoch) == _reference_iso(epoch)
