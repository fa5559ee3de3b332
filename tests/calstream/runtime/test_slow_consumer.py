"""A consumer much slower than the publisher: the broker queues the burst, nothing is dropped.

The pipeline's store is slowed by another process taking the SQLite write lock again and again
(200 ms held, 20 ms free), while a publisher sends a burst of 5,000 messages, five times
mosquitto's default ``max_queued_messages`` of 1,000, as fast as the broker takes them. With the
deploy configuration every reading is stored exactly once; with mosquitto's default queue limit
the same burst loses messages at the broker (FIELD_NOTES.md), which is what the deploy
configuration's limits are for (docs/operations.md, "Sizing the broker's queues").
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from calstream.servers.mosquitto import LocalMosquitto
from calstream.settings import Settings
from calstream.wiring import pipeline_for, subscriber_for
from edge_sim.gateway import GatewayPublisher
from edge_sim.simulator import FleetSimulator, GatewayBatch
from metrology.fleet import Fleet
from storage.sqlite_store import SqliteStore

BURST_MESSAGES = 5_000

_SLOW_WRITER = """
import sqlite3, sys, time, select
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
print("slowing", flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:
    conn.execute("BEGIN IMMEDIATE")
    time.sleep(0.2)
    conn.execute("ROLLBACK")
    time.sleep(0.02)
"""


class SlowStore:
    """Another process holding the store's write lock most of the time, until stopped."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SLOW_WRITER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline() == b"slowing\n"

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"\n")
        self.process.stdin.flush()
        assert self.process.wait(10) == 0


def burst(fleet: Fleet) -> list[GatewayBatch]:
    """5,000 small messages (2 readings each) of the example fleet."""
    end = fleet.as_of or 0.0
    simulator = FleetSimulator(
        fleet, 9, end - 30 * 86_400.0, end, batch_size=2, publish_interval_s=86_400.0
    )
    batches = []
    for batch in simulator:
        batches.append(batch)
        if len(batches) == BURST_MESSAGES:
            return batches
    raise AssertionError("the simulation is shorter than the burst")


def run_burst(broker: LocalMosquitto, fleet: Fleet, folder: Path) -> tuple[int, int, int]:
    """Publish the burst to a slowed pipeline; returns (readings acknowledged by the broker,
    readings stored, most messages queued at once in the subscriber's bounded queue)."""
    end = fleet.as_of or 0.0
    path = folder / "store.sqlite"
    store = SqliteStore(path)
    store.register_fleet(fleet)
    subscriber = subscriber_for(
        Settings(), broker.host, broker.port, "slow-consumer", queue_size=200
    )
    pipeline = pipeline_for(
        fleet, Settings(), store, subscriber, clock=lambda: end, max_messages_per_batch=200
    )
    slow = SlowStore(path)
    pipeline.start()
    publisher = GatewayPublisher(client_id="slow-consumer-burst", max_inflight=1_000)
    publisher.connect(broker.host, broker.port)
    deepest = 0
    for batch in burst(fleet):
        publisher.publish_batch(*batch)
        deepest = max(deepest, subscriber.backlog)
    assert publisher.flush(60)
    published = publisher.readings_acked
    # Drained when nothing new arrives for 3 s (the slowed store still takes a batch per 0.2 s).
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() - quiet_since < 3.0:
        time.sleep(0.1)
        received = pipeline.counters.received
        if received != last or subscriber.backlog:
            last, quiet_since = received, time.monotonic()
        if pipeline.counters.stored == published:
            break
    slow.stop()
    pipeline.stop()
    publisher.close()
    subscriber.stop()
    assert pipeline.error is None
    stored = store.reading_count()
    assert pipeline.counters.rejected == 0
    store.close()
    return published, stored, deepest


def test_a_burst_five_times_the_default_queue_reaches_a_slow_pipeline_whole(
    mosquitto: LocalMosquitto, example_fleet: Fleet, tmp_path: Path
) -> None:
    published, stored, deepest = run_burst(mosquitto, example_fleet, tmp_path)
    assert published == 2 * BURST_MESSAGES
    assert stored == published  # exactly once: nothing dropped by the broker, nothing twice
    assert deepest <= 200  # the pipeline's own queue stayed bounded: the broker held the rest


def test_with_mosquittos_default_queue_limit_the_same_burst_loses_messages(
    example_fleet: Fleet, tmp_path: Path
) -> None:
    """The trap the deploy configuration avoids, shown with the same burst and consumer."""
    broker = LocalMosquitto(tmp_path / "default-limits")
    tuned = broker.config.read_text()
    assert "max_queued_messages 2000000" in tuned
    broker.config.write_text(
        "\n".join(
            line
            for line in tuned.splitlines()
            if not line.startswith(("max_queued_messages", "max_queued_bytes"))
        )
        + "\n"
    )
    with broker:
        published, stored, _ = run_burst(broker, example_fleet, tmp_path)
    assert published == 2 * BURST_MESSAGES
    if stored == published:
        pytest.fail("the consumer kept up: the burst did not exceed the default queue")
    assert stored < published
