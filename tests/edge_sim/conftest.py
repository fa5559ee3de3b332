"""Fixtures of the edge simulator tests: the shipped fleet, and a real MQTT broker (amqtt).

The broker runs embedded in a background thread with its own asyncio loop, bound to 127.0.0.1 on
a free port (amqtt's default would be 0.0.0.0:1883). amqtt 0.12 speaks MQTT 3.1.1 only.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def unused_tcp_port() -> int:
    """A port of 127.0.0.1 nobody listens on (free when asked)."""
    return free_port()


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int


class EmbeddedBroker:
    """An amqtt broker in a daemon thread; :meth:`start` returns once it listens."""

    def __init__(self, port: int) -> None:
        self.address = BrokerAddress("127.0.0.1", port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="amqtt", daemon=True)
        self._broker: Any = None

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {
                "default": {"type": "tcp", "bind": f"{self.address.host}:{self.address.port}"}
            },
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }

    async def _start(self) -> None:
        from amqtt.broker import Broker

        self._broker = Broker(self._config())
        await self._broker.start()

    def start(self, timeout: float = 15.0) -> None:
        self._thread.start()
        future: Future[None] = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(timeout)

    def stop(self, timeout: float = 15.0) -> None:
        """Shut the broker down (again: nothing happens)."""
        if not self._thread.is_alive():
            return
        if self._broker is not None:
            asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)


@pytest.fixture
def start_amqtt() -> Iterator[Callable[[int], EmbeddedBroker]]:
    """Start brokers on given ports (``stop()`` one to restart it); all stop at the end."""
    started: list[EmbeddedBroker] = []

    def start(port: int) -> EmbeddedBroker:
        broker = EmbeddedBroker(port)
        broker.start()
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.stop()


@pytest.fixture
def amqtt_broker(start_amqtt: Callable[[int], EmbeddedBroker]) -> BrokerAddress:
    """A fresh embedded amqtt broker on a free port of 127.0.0.1."""
    return start_amqtt(free_port()).address


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
