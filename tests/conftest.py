"""Fixtures shared by every test package: real brokers on free ports, and the example fleet.

- ``mosquitto``: Debian's mosquitto started from ``deploy/mosquitto/mosquitto.conf``'s tuning
  (persistence, queue limits, in-flight window) on a free port of 127.0.0.1 with a temporary
  persistence folder and anonymous access. ``make test`` installs it when missing.
- ``amqtt_broker``: the embedded broker calstream runs by default.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from calstream.embedded_broker import EmbeddedBroker
from calstream.local_mosquitto import LocalMosquitto, mosquitto_binary
from calstream.settings import example_fleet_path
from calstream.wiring import read_fleet
from metrology.fleet import Fleet


@dataclass
class Broker:
    """Where a test broker listens."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[LocalMosquitto]:
    """A real mosquitto with the deploy tuning, on a free port, in a temporary folder."""
    try:
        mosquitto_binary()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    broker = LocalMosquitto(tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture
def amqtt_broker() -> Iterator[Broker]:
    """The embedded amqtt broker calstream runs when no broker is configured."""
    embedded = EmbeddedBroker()
    embedded.start()
    try:
        yield Broker(embedded.host, embedded.port)
    finally:
        embedded.stop()


@pytest.fixture(scope="session")
def example_fleet() -> Fleet:
    """The example fleet shipped in ``calstream/data/fleet.yaml``."""
    return read_fleet(example_fleet_path())
