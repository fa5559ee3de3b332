"""Fixtures of the edge simulator tests: the shipped fleet, and a real MQTT broker (amqtt).

Brokers are calstream's embedded amqtt (:class:`calstream.servers.embedded.EmbeddedBroker`);
``amqtt_broker`` itself comes from ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from calstream.servers.base import free_port
from calstream.servers.embedded import EmbeddedBroker
from metrology.fleet import Fleet, load_fleet

REPO = Path(__file__).resolve().parents[2]
SHIPPED_FLEET = REPO / "calstream" / "data" / "fleet.yaml"


@pytest.fixture(scope="session")
def shipped_fleet_text() -> str:
    """The text of ``calstream/data/fleet.yaml``."""
    return SHIPPED_FLEET.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def shipped_fleet() -> Fleet:
    return load_fleet(yaml.safe_load(SHIPPED_FLEET.read_text(encoding="utf-8")))


@pytest.fixture
def unused_tcp_port() -> int:
    """A port of 127.0.0.1 nobody listens on (free when asked)."""
    return free_port()


@pytest.fixture
def start_amqtt() -> Iterator[Callable[[int], EmbeddedBroker]]:
    """Start embedded brokers on given ports (``stop()`` one to restart it); all stop at the end."""
    started: list[EmbeddedBroker] = []

    def start(port: int) -> EmbeddedBroker:
        broker = EmbeddedBroker(port=port)
        broker.start()
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.stop()


# --- one simulated year of the shipped fleet, collected per instrument ---

SIM_SEED = 7
SIM_DAYS = 365


@dataclass
class Series:
    """The readings of one instrument, as arrays (reference NaN where none was reported)."""

    ts: Any
    value: Any
    unit: str
    reference: Any
    u_reference: Any
    seq: Any


@dataclass
class SimulatedYear:
    simulator: Any
    series: dict[str, Series]
    gateway_seqs: dict[tuple[str, str, str], list[int]]
    gateway_ts: dict[tuple[str, str, str], list[float]]
    batch_sizes: list[int]


@pytest.fixture(scope="session")
def simulated_year(shipped_fleet: Fleet) -> SimulatedYear:
    import numpy as np

    from edge_sim.simulator import FleetSimulator

    assert shipped_fleet.as_of is not None
    end = shipped_fleet.as_of
    simulator = FleetSimulator(shipped_fleet, SIM_SEED, end - SIM_DAYS * 86_400.0, end)
    columns: dict[str, tuple[list[float], list[float], list[float], list[float], list[int]]] = {}
    units: dict[str, str] = {}
    seqs: dict[tuple[str, str, str], list[int]] = {}
    stamps: dict[tuple[str, str, str], list[float]] = {}
    sizes = []
    nan = float("nan")
    for tenant, site, gateway, readings in simulator:
        sizes.append(len(readings))
        key = (tenant, site, gateway)
        seqs.setdefault(key, []).extend(r.seq for r in readings)
        stamps.setdefault(key, []).extend(r.ts for r in readings)
        for r in readings:
            ts, value, ref, uref, seq = columns.setdefault(r.instrument_id, ([], [], [], [], []))
            ts.append(r.ts)
            value.append(r.value)
            ref.append(nan if r.reference is None else r.reference)
            uref.append(nan if r.u_reference is None else r.u_reference)
            seq.append(r.seq)
            units[r.instrument_id] = r.unit
    series = {
        i: Series(
            ts=np.asarray(ts),
            value=np.asarray(value),
            unit=units[i],
            reference=np.asarray(ref),
            u_reference=np.asarray(uref),
            seq=np.asarray(seq),
        )
        for i, (ts, value, ref, uref, seq) in columns.items()
    }
    return SimulatedYear(simulator, series, seqs, stamps, sizes)
