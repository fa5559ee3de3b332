"""Fixtures of the dashboard tests: one simulated run, stored once per session."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from influx_answers import InfluxRun
from simulated_run import SimulatedRun, simulate

from calstream.servers.influxdb import LocalInfluxDB, influxd_binary
from metrology.fleet import Fleet
from storage.influx import InfluxSink
from storage.sqlite_store import SqliteStore


@pytest.fixture(scope="session")
def simulated_run(example_fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> SimulatedRun:
    batches, start, end = simulate(example_fleet)
    db = tmp_path_factory.mktemp("dashboards") / "calstream.sqlite"
    store = SqliteStore(db)
    try:
        store.register_fleet(example_fleet)
        for batch in batches:
            store.write(batch)
    finally:
        store.close()
    return SimulatedRun(example_fleet, batches, start, end, db)


@pytest.fixture
def sqlite_connection(simulated_run: SimulatedRun) -> Iterator[sqlite3.Connection]:
    conn = simulated_run.connect()
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture(scope="session")
def detail_instrument(simulated_run: SimulatedRun) -> str:
    """The instrument the detail dashboard is tested with: a drift prediction and detector
    statistics, so that every panel of the dashboard has something to show."""
    with simulated_run.connect() as conn:
        row = conn.execute(
            "SELECT s.instrument_id FROM instrument_state AS s "
            "WHERE s.predicted_oot_at IS NOT NULL AND s.drift_rate IS NOT NULL "
            "AND (SELECT COUNT(*) FROM residuals AS r "
            "     WHERE r.instrument_id = s.instrument_id AND r.ewma IS NOT NULL) > 100 "
            "ORDER BY s.instrument_id LIMIT 1"
        ).fetchone()
    assert row is not None, "the simulated run has no instrument with a drift prediction"
    return str(row[0])


@pytest.fixture(scope="module")
def influx_run(
    simulated_run: SimulatedRun, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InfluxRun]:
    """Debian's influxd (the shared ``influxdb`` fixture's server, ``calstream.servers.influxdb``)
    for the whole module: writing the run takes seconds, so it is written once and every panel
    query reads it (the shared fixture is per test)."""
    try:
        influxd_binary()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    server = LocalInfluxDB(tmp_path_factory.mktemp("influxdb") / "influxdb")
    server.start()
    try:
        sink = InfluxSink.from_url(server.store_url, simulated_run.fleet)
        try:
            points = sum(sink.write_series(batch) for batch in simulated_run.batches)
        finally:
            sink.close()
        yield InfluxRun(server, points)
    finally:
        server.kill()
