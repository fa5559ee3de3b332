"""The fast encoder writes exactly what metrology.wire.encode writes, and decode gives it back."""

from __future__ import annotations

import pytest

from edge_sim.encoding import encode_batch, fast_iso
from edge_sim.simulator import FleetSimulator
from metrology.fleet import Fleet
from metrology.reading import Reading
from metrology.timebase import iso
from metrology.wire import decode, encode, readings_topic


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


def test_fast_encoder_is_byte_identical(batches: list) -> None:
    for batch in batches:
        assert encode_batch(*batch) == encode(*batch)


@pytest.mark.parametrize(
    "reading",
    [
        Reading("t", "s", "g", "i-1", 1_793_491_200.5, 21.5, "degC", 1),
        Reading("t", "s", "g", "i-1", 1_793_491_200.0004999, 1, "degC", 2, 3, None),
        Reading("t", "s", "g", "i-1", 0.0, -0.0, "m**3/h", 3, 1e-300, 0.0),
        Reading("t", "s", "g", "i-1", -86_400.25, 1e22, "\u00b0C", 2**62, -5.0, 0.25),
    ],
)
def test_fast_encoder_matches_on_unusual_readings(reading: Reading) -> None:
    assert encode_batch("t", "s", "g", [reading]) == encode("t", "s", "g", [reading])


def test_fast_encoder_refuses_what_wire_refuses() -> None:
    bad = Reading("t", "s", "g", "i-1", 0.0, float("nan"), "V", 1)
    with pytest.raises(ValueError):
        encode("t", "s", "g", [bad])
    with pytest.raises(ValueError):
        encode_batch("t", "s", "g", [bad])
    bad_reference = bad._replace(value=1.0, reference=float("inf"), u_reference=0.1)
    with pytest.raises(ValueError):
        encode("t", "s", "g", [bad_reference])
    with pytest.raises(ValueError):
        encode_batch("t", "s", "g", [bad_reference])


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
def test_fast_iso_matches_metrology_iso(epoch: float) -> None:
    assert fast_iso(epoch) == iso(epoch)


def test_fast_iso_matches_on_many_times() -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    for epoch in np.concatenate(
        [rng.integers(0, 4_000_000_000, 20_000).astype(float), rng.uniform(0, 4e9, 20_000)]
    ).tolist():
        assert fast_iso(epoch) == iso(epoch)
