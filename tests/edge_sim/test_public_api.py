"""The package's public names exist and are what callers import."""

from __future__ import annotations

import pytest

import edge_sim


def test_all_names_are_importable() -> None:
    if getattr(edge_sim, "__file__", None) is None:
        pytest.fail(
            "'edge_sim' was imported as the namespace package tests/edge_sim, not the real one: "
            "tests/ is on sys.path (tests/conftest.py) while the repository root is not. "
            "Set pythonpath = ['.'] in [tool.pytest.ini_options]."
        )
    assert edge_sim.__all__ == sorted(edge_sim.__all__)
    for name in edge_sim.__all__:
        assert getattr(edge_sim, name) is not None, name


def test_the_composition_root_finds_what_it_needs() -> None:
    from edge_sim.fleetgen import generate_fleet_document, write_example_fleet
    from edge_sim.gateway import GatewayPublisher
    from edge_sim.simulator import FleetSimulator
    from edge_sim.truth import GroundTruth, read_truth, write_truth

    for member in ("connect", "publish_batch", "flush", "close", "readings_sent"):
        assert hasattr(GatewayPublisher(), member)
    assert callable(FleetSimulator.batches_until) and FleetSimulator.run_until
    assert callable(generate_fleet_document) and callable(write_example_fleet)
    assert GroundTruth and callable(read_truth) and callable(write_truth)
