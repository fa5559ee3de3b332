"""The same seed gives the same readings in the same order; pacing does not change them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edge_sim.simulator import FleetSimulator
from metrology.fleet import Fleet
from metrology.reading import Reading
from metrology.timebase import SECONDS_PER_DAY

DAYS = 20


def simulate(fleet: Fleet, seed: int, **options: Any) -> FleetSimulator:
    assert fleet.as_of is not None
    return FleetSimulator(fleet, seed, fleet.as_of - DAYS * SECONDS_PER_DAY, fleet.as_of, **options)


def all_readings(simulator: FleetSimulator) -> list[Reading]:
    return [r for batch in simulator for r in batch.readings]


def test_same_seed_same_batches_and_truth(shipped_fleet: Fleet) -> None:
    first, second = simulate(shipped_fleet, 11), simulate(shipped_fleet, 11)
    assert list(first) == list(second)
    assert first.truth == second.truth


def test_different_seed_different_readings_and_truth(shipped_fleet: Fleet) -> None:
    first, second = simulate(shipped_fleet, 11), simulate(shipped_fleet, 12)
    a, b = all_readings(first), all_readings(second)
    assert [r.value for r in a[:500]] != [r.value for r in b[:500]]
    assert first.truth != second.truth


def test_pacing_does_not_change_the_readings(shipped_fleet: Fleet) -> None:
    whole = simulate(shipped_fleet, 5)
    paced = simulate(shipped_fleet, 5)
    rng = np.random.default_rng(0)
    at = paced.start
    collected: list[Reading] = []
    while not paced.finished:
        at += float(rng.uniform(0.0, 2 * 3600.0))
        for batch in paced.batches_until(at):
            assert all(r.ts <= at for r in batch.readings)
            collected.extend(batch.readings)
        assert paced.simulated_until == min(at, paced.end)
    assert collected == all_readings(whole)


def test_batches_respect_size_and_carry_one_gateway(shipped_fleet: Fleet) -> None:
    simulator = simulate(shipped_fleet, 3, batch_size=7, publish_interval_s=86_400.0)
    count = 0
    for tenant, site, gateway, readings in simulator:
        assert 1 <= len(readings) <= 7
        assert {(r.tenant, r.site, r.gateway) for r in readings} == {(tenant, site, gateway)}
        count += len(readings)
    assert count == simulator.readings_generated > 10_000


def test_invalid_options_are_refused(shipped_fleet: Fleet) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        simulate(shipped_fleet, 1, batch_size=0)
    with pytest.raises(ValueError, match="window"):
        FleetSimulator(shipped_fleet, 1, 10.0, 10.0)


def test_a_dropout_covering_a_gateways_whole_day_yields_no_empty_batch() -> None:
    """Regression: fleet seed 1009, simulation seed 9: acme/north/gw-02 has one instrument whose
    dropout covers a whole simulated day; that day used to raise IndexError."""
    from datetime import UTC, datetime

    from edge_sim.fleetgen import generate_fleet_document
    from metrology.fleet import load_fleet

    as_of = datetime(2026, 11, 1, tzinfo=UTC)
    fleet = load_fleet(generate_fleet_document(60, 1009, as_of))
    end = as_of.timestamp()
    simulator = FleetSimulator(fleet, 9, end - 365 * 86_400.0, end)
    until = datetime(2026, 6, 15, tzinfo=UTC).timestamp()
    batches = list(simulator.batches_until(until))
    assert batches and all(batch.readings for batch in batches)
    silent = [
        t
        for t in simulator.truth.instruments.values()
        if any(start < until and stop - start >= 86_400.0 for start, stop in t.dropout_windows)
    ]
    assert silent  # the case that used to fail is really in this fleet
