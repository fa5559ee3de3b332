"""What the store cannot encode becomes a dead letter; the rest of the batch is stored.

The store here is the real SQLite store with one defect planted in its write (a reading of one
instrument at one sequence number cannot be encoded), because no valid input reaches such a
defect in the shipped store any more: the boundary must hold for the defect nobody knows yet.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from calstream.servers.mosquitto import LocalMosquitto
from calstream.settings import Settings
from calstream.wiring import pipeline_for, subscriber_for
from edge_sim.gateway import GatewayPublisher
from edge_sim.simulator import FleetSimulator
from metrology.batch import OutputBatch
from metrology.fleet import Fleet
from metrology.timebase import SECONDS_PER_DAY
from storage.batch import WriteResult
from storage.sqlite_store import SqliteStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


class DefectiveStore(SqliteStore):
    """The SQLite store, failing to encode readings whose sequence number is in ``bad``."""

    def __init__(self, path: Path, bad: set[tuple[str, int]]) -> None:
        super().__init__(path)
        self.bad = bad
        self.refused_batches = 0

    def write(self, batch: OutputBatch) -> WriteResult:
        for reading, _ in batch.readings:
            if (reading.instrument_id, reading.seq) in self.bad:
                self.refused_batches += 1
                raise TypeError(f"cannot encode seq {reading.seq} of {reading.instrument_id}")
        return super().write(batch)


def test_a_reading_the_store_cannot_encode_is_dead_lettered_and_the_batch_is_stored(
    mosquitto: LocalMosquitto, example_fleet: Fleet, tmp_path: Path
) -> None:
    fleet = example_fleet
    end = fleet.as_of or 0.0
    batches = list(FleetSimulator(fleet, seed=4, start=end - 5 * SECONDS_PER_DAY, end=end))
    _, _, _, first_readings = batches[len(batches) // 2]
    bad = {(r.instrument_id, r.seq) for r in first_readings[:2]}
    store = DefectiveStore(tmp_path / "store.sqlite", bad)
    store.register_fleet(fleet)
    settings = Settings(max_future_s=3_600.0)
    subscriber = subscriber_for(settings, mosquitto.host, mosquitto.port, "refusal-test")
    pipeline = pipeline_for(fleet, settings, store, subscriber, clock=lambda: end)
    pipeline.start()
    publisher = GatewayPublisher(client_id="gateways-refusal-test")
    publisher.connect(mosquitto.host, mosquitto.port)
    try:
        publisher.publish_all(batches)
        assert publisher.flush(30)
        total = publisher.readings_acked
        deadline = time.monotonic() + 60
        while pipeline.counters.received < total and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        publisher.close()
        pipeline.stop()
        subscriber.stop()
    counters = pipeline.counters
    assert pipeline.error is None
    assert store.refused_batches >= 1
    assert counters.received == total
    assert counters.rejected_by_reason == {"store_refused": 2}
    assert counters.accepted == total - 2
    assert store.reading_count() == total - 2
    store.close()
    with sqlite3.connect(tmp_path / "store.sqlite") as conn:
        letters = conn.execute("SELECT instrument_id, seq, reason, detail FROM dead_letters")
        rows = letters.fetchall()
    assert sorted((i, s) for i, s, _, _ in rows) == sorted(bad)
    for _, _, reason, detail in rows:
        assert reason == "store_refused"
        assert "TypeError: cannot encode seq" in detail
