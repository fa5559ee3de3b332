"""Ground truth survives its JSON file unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_sim.behaviour import Behaviour
from edge_sim.simulator import FleetSimulator
from edge_sim.truth import GroundTruth, read_truth, write_truth
from metrology.fleet import Fleet


def test_truth_round_trips_through_json(shipped_fleet: Fleet, tmp_path: Path) -> None:
    assert shipped_fleet.as_of is not None
    simulator = FleetSimulator(
        shipped_fleet, 7, shipped_fleet.as_of - 365 * 86_400.0, shipped_fleet.as_of
    )
    truth = simulator.truth
    path = tmp_path / "truth.json"
    write_truth(path, truth)
    assert read_truth(path) == truth
    document = json.loads(path.read_text(encoding="utf-8"))
    assert len(document["instruments"]) == len(shipped_fleet.instruments)
    first = document["instruments"][0]
    for key in (
        "instrument_id",
        "tenant",
        "site",
        "behaviour",
        "reference_kind",
        "drift_rate_per_day",
        "onset_at",
        "true_oot_at",
        "stuck_at",
        "dropout_windows",
    ):
        assert key in first
    kinds = {t.behaviour for t in truth.instruments.values()}
    assert kinds == set(Behaviour)


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="format"):
        GroundTruth.from_json({"format": 99, "seed": 1, "start": 0, "end": 1, "instruments": []})
