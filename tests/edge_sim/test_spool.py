"""Store-and-forward at the edge: the spool file, and a real mosquitto going away and back."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from calstream.servers.mosquitto import LocalMosquitto
from edge_sim.gateway import GatewayPublisher
from edge_sim.simulator import FleetSimulator, GatewayBatch
from edge_sim.spool import Spool, SpoolFull
from ingest.decoders.json_v1 import decode
from ingest.subscriber import DurableSubscriber
from metrology.fleet import Fleet
from metrology.wire import READINGS_SUBSCRIPTION

pytestmark = pytest.mark.integration

Identity = tuple[str, str, str, int]
"""(tenant, site, gateway, seq): what identifies a reading on the wire."""


# --- the spool file ----------------------------------------------------------------------------


def test_the_spool_keeps_order_across_reopening_and_counts_exactly(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=1_000)
    ids = [spool.append(f"t/{i}", b"x" * 10, readings=i + 1) for i in range(5)]
    assert spool.depth.messages == 5 and spool.depth.readings == 15 and spool.depth.bytes == 50
    spool.remove(ids[:2])
    spool.close()
    again = Spool(tmp_path / "spool.sqlite", max_bytes=1_000)
    assert again.depth.messages == 3 and again.depth.readings == 12 and again.depth.bytes == 30
    assert [m.topic for m in again.after(0, 10)] == ["t/2", "t/3", "t/4"]
    assert [m.topic for m in again.after(ids[3], 10)] == ["t/4"]
    again.close()


def test_a_full_spool_refuses_and_drops_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=25)
    spool.append("a", b"x" * 10, 1)
    spool.append("b", b"x" * 10, 1)
    with pytest.raises(SpoolFull, match="would exceed"):
        spool.append("c", b"x" * 10, 1)
    assert [m.topic for m in spool.after(0, 10)] == ["a", "b"]
    spool.close()


def test_a_spool_written_before_the_local_queue_opens_and_delivers_in_order(
    tmp_path: Path,
) -> None:
    """A spool file as the spool wrote it before it was a local queue (its own table, WAL)."""
    path = tmp_path / "spool.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "topic TEXT NOT NULL, payload BLOB NOT NULL, readings INTEGER NOT NULL)"
    )
    conn.executemany(
        "INSERT INTO messages (topic, payload, readings) VALUES (?, ?, ?)",
        [(f"t/{i}", b"p%d" % i * 4, i) for i in range(4)],
    )
    conn.execute("DELETE FROM messages WHERE id = 1")  # delivered before the gateway stopped
    conn.close()

    spool = Spool(path, max_bytes=1_000)
    assert spool.depth.messages == 3 and spool.depth.readings == 6 and spool.depth.bytes == 24
    assert [(m.id, m.topic, m.payload, m.readings) for m in spool.after(0, 10)] == [
        (2, "t/1", b"p1p1p1p1", 1),
        (3, "t/2", b"p2p2p2p2", 2),
        (4, "t/3", b"p3p3p3p3", 3),
    ]
    assert spool.append("t/4", b"p4", 4) == 5  # behind what the old spool held
    spool.remove([2, 3])
    spool.close()
    again = Spool(path, max_bytes=1_000)
    assert [m.topic for m in again.after(0, 10)] == ["t/3", "t/4"]
    assert again.depth.messages == 2 and again.depth.readings == 7 and again.depth.bytes == 10
    again.close()


# --- a real broker away and back ---------------------------------------------------------------


class Arrivals:
    """A durable subscriber recording every reading in the order it arrives."""

    def __init__(self, broker: LocalMosquitto, client_id: str) -> None:
        self.subscriber = DurableSubscriber(
            broker.host, broker.port, client_id=client_id, topic=READINGS_SUBSCRIPTION
        )
        self.subscriber.start()
        self.readings: list[Identity] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            messages = self.subscriber.get_batch(1_000, timeout=0.1)
            for message in messages:
                decoded = decode(message.topic, message.payload)
                assert not decoded.rejections
                self.readings.extend((r.tenant, r.site, r.gateway, r.seq) for r in decoded.readings)
            self.subscriber.ack(messages)

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(set(self.readings)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # anything more would be a duplicate: give it time to show

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.subscriber.stop()


def first_arrivals(arrived: list[Identity]) -> list[Identity]:
    """Each reading at its first arrival: what the pipeline keeps (it drops re-deliveries by
    gateway sequence number, ``DUPLICATE_SEQUENCE``)."""
    seen: set[Identity] = set()
    first = []
    for identity in arrived:
        if identity not in seen:
            seen.add(identity)
            first.append(identity)
    return first


def in_order_per_gateway(arrived: list[Identity]) -> bool:
    last: dict[tuple[str, str, str], int] = defaultdict(int)
    for tenant, site, gateway, seq in arrived:
        if seq <= last[(tenant, site, gateway)]:
            return False
        last[(tenant, site, gateway)] = seq
    return True


def batches_of(fleet: Fleet, messages: int) -> list[GatewayBatch]:
    """The first ``messages`` messages (of 20 readings at most) of a simulated month."""
    end = fleet.as_of or 0.0
    simulator = FleetSimulator(
        fleet, 11, end - 30 * 86_400.0, end, batch_size=20, publish_interval_s=86_400.0
    )
    return list(simulator)[:messages]


@pytest.fixture
def arrivals(mosquitto: LocalMosquitto) -> Iterator[Arrivals]:
    subscriber = Arrivals(mosquitto, "spool-test-subscriber")
    yield subscriber
    subscriber.stop()


def test_the_broker_away_while_the_gateway_produces_every_reading_arrives_once_in_order(
    mosquitto: LocalMosquitto, arrivals: Arrivals, shipped_fleet: Fleet, tmp_path: Path
) -> None:
    """mosquitto stopped for 4 s (the same mechanism as a 60 s outage) while batches keep coming."""
    batches = batches_of(shipped_fleet, 1_500)
    expected = [(r.tenant, r.site, r.gateway, r.seq) for b in batches for r in b.readings]
    spool = Spool(tmp_path / "gateway-spool.sqlite")
    publisher = GatewayPublisher(
        client_id="spool-test-gateway", max_inflight=100, reconnect_max_delay=1, spool=spool
    )
    publisher.connect(mosquitto.host, mosquitto.port)
    produced = threading.Event()

    def produce() -> None:
        for batch in batches:
            publisher.publish_batch(*batch, timeout=None)
            time.sleep(0.004)
        produced.set()

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    time.sleep(1.0)
    mosquitto.stop()  # the broker goes away mid-stream (graceful: it saves the sessions)
    time.sleep(2.0)
    assert not publisher.connected
    spooled_during_outage = publisher.spooled
    assert spooled_during_outage > 0  # the gateway kept producing, to disk
    time.sleep(2.0)
    mosquitto.start()
    producer.join(60)
    assert produced.is_set()
    assert publisher.flush(60)
    arrivals.wait_for(len(expected))
    publisher.close()

    assert publisher.readings_acked == len(expected)
    assert publisher.readings_refused == 0
    assert spool.empty and spool.depth.bytes == 0
    assert publisher.connections >= 2
    # At least once on the wire: a message in flight when the broker stopped (its PUBACK, or
    # the subscriber's acknowledgement, lost) comes again; de-duplicated, exactly once.
    kept = first_arrivals(arrivals.readings)
    assert sorted(kept) == sorted(expected)
    assert len(arrivals.readings) - len(kept) <= 20 * (100 + 1_000)  # at most the two windows
    assert in_order_per_gateway(kept)
    spool.close()


def test_a_gateway_started_while_the_broker_is_down_spools_and_delivers_later(
    mosquitto: LocalMosquitto, shipped_fleet: Fleet, tmp_path: Path
) -> None:
    """The first connection fails: no ConnectError with a spool; the messages wait on disk."""
    batches = batches_of(shipped_fleet, 200)
    expected = [(r.tenant, r.site, r.gateway, r.seq) for b in batches for r in b.readings]
    first = Arrivals(mosquitto, "spool-test-late-subscriber")  # its durable session...
    first.stop()
    mosquitto.stop()  # ...is kept by the broker across the restart
    spool = Spool(tmp_path / "gateway-spool.sqlite")
    publisher = GatewayPublisher(
        client_id="spool-test-late-gateway", reconnect_max_delay=1, spool=spool
    )
    publisher.connect(mosquitto.host, mosquitto.port, timeout=1.0)
    for batch in batches:
        assert publisher.publish_batch(*batch) == 0  # spooled, not sent
    assert spool.depth.readings == len(expected)
    mosquitto.start()
    arrivals = Arrivals(mosquitto, "spool-test-late-subscriber")
    try:
        assert publisher.flush(60)
        arrivals.wait_for(len(expected))
    finally:
        publisher.close()
        arrivals.stop()
    assert arrivals.readings == expected  # every reading once, in the order produced
    assert spool.empty
    spool.close()
