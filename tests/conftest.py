"""Fixtures shared by every test package: real brokers on free ports, and the example fleet.

- ``mosquitto``: Debian's mosquitto started from ``deploy/mosquitto/mosquitto.conf``'s tuning
  (persistence, queue limits, in-flight window) on a free port of 127.0.0.1 with a temporary
  persistence folder and anonymous access. ``make test`` installs it when missing.
- ``amqtt_broker``: the in-process broker of `calstream demo` (and of `calstream run` with
  ``CALSTREAM_EMBEDDED_BROKER=amqtt``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from calstream.servers.embedded import EmbeddedBroker
from calstream.servers.mosquitto import LocalMosquitto, mosquitto_binary
from calstream.settings import example_fleet_path
from ingest.importers.fleet_file import read_fleet
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
    """The in-process amqtt broker `calstream demo` runs when no broker is configured."""
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


from servers.postgres import LocalPostgres, postgres_bin_dir  # noqa: E402


@dataclass
class PostgresDatabase:
    """A fresh database of the session's PostgreSQL; ``server`` stops and starts it (outages)."""

    url: str
    server: LocalPostgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres]:
    """A real PostgreSQL (initdb, pg_ctl) on a free port, in a temporary folder, for the session."""
    try:
        postgres_bin_dir()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    server = LocalPostgres()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def postgres(postgres_server: LocalPostgres, request: pytest.FixtureRequest) -> PostgresDatabase:
    """A new, empty database on the session's PostgreSQL: ``.url`` is postgresql+psycopg://..."""
    import re
    import uuid

    if not postgres_server.running:  # a test that stopped it failed before starting it again
        postgres_server.start()
    name = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40]
    url = postgres_server.create_database(f"t_{name}_{uuid.uuid4().hex[:8]}")
    return PostgresDatabase(url, postgres_server)


from calstream.servers.influxdb import (  # noqa: E402
    LocalInfluxDB,
    LocalVictoriaMetrics,
    influxd_binary,
    victoria_metrics_binary,
)


@pytest.fixture
def influxdb(tmp_path: Path) -> Iterator[LocalInfluxDB]:
    """Debian's influxd 1.x on a free port, files in a temporary folder, database created:
    ``.base_url``, ``.database``, ``.store_url`` (``influxdb://...``), ``.stop()``/``.start()``."""
    try:
        influxd_binary()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    server = LocalInfluxDB(tmp_path / "influxdb")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def victoria_metrics(tmp_path: Path) -> Iterator[LocalVictoriaMetrics]:
    """Debian's victoria-metrics on a free port, data in a temporary folder: ``.base_url``,
    ``.bucket``, ``.store_url`` (``influxdb2://...&reads=victoriametrics``)."""
    try:
        victoria_metrics_binary()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    server = LocalVictoriaMetrics(tmp_path / "victoria-metrics")
    server.start()
    try:
        yield server
    finally:
        server.kill()
