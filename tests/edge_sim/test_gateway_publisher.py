"""GatewayPublisher against a real (embedded amqtt) broker, read back by a plain paho subscriber."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_sim.errors import ConnectError
from edge_sim.gateway import GatewayPublisher
from edge_sim.simulator import FleetSimulator, GatewayBatch
from ingest.decoders.json_v1 import decode
from metrology.fleet import Fleet
from metrology.reading import Reading
from metrology.wire import READINGS_SUBSCRIPTION

pytestmark = pytest.mark.integration


class Subscriber:
    """A paho client counting the readings it decodes from every readings topic."""

    def __init__(self, host: str, port: int) -> None:
        self.readings: list[Reading] = []
        self.rejections = 0
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id="edge-sim-test-subscriber"
        )
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *args: self._subscribed.set()
        self._client.connect(host, port)
        self._client.loop_start()
        self._client.subscribe(READINGS_SUBSCRIPTION, qos=1)
        assert self._subscribed.wait(10), "no SUBACK from the broker"

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        decoded = decode(message.topic, message.payload)
        with self._lock:
            self.readings.extend(decoded.readings)
            self.rejections += len(decoded.rejections)

    def wait_for(self, count: int, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.readings) >= count:
                    break
            time.sleep(0.02)
        time.sleep(0.2)  # anything beyond ``count`` would be a duplicate: give it time to show
        with self._lock:
            return len(self.readings)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def subscriber(amqtt_broker: Any) -> Iterator[Subscriber]:
    client = Subscriber(amqtt_broker.host, amqtt_broker.port)
    yield client
    client.close()


def first_batches(fleet: Fleet, readings: int, batch_size: int) -> list[GatewayBatch]:
    """Simulator batches holding exactly ``readings`` readings."""
    assert fleet.as_of is not None
    simulator = FleetSimulator(
        fleet,
        7,
        fleet.as_of - 30 * 86_400.0,
        fleet.as_of,
        batch_size=batch_size,
        publish_interval_s=86_400.0,
    )
    batches: list[GatewayBatch] = []
    left = readings
    for batch in simulator:
        batches.append(batch._replace(readings=batch.readings[:left]))
        left -= len(batches[-1].readings)
        if left == 0:
            return batches
    raise AssertionError("the simulation is shorter than asked")


def test_every_published_reading_arrives_once_and_is_acknowledged(
    amqtt_broker: Any, subscriber: Subscriber, shipped_fleet: Fleet
) -> None:
    batches = first_batches(shipped_fleet, 2_000, batch_size=100)
    with GatewayPublisher(client_id="edge-sim-test-publisher", max_inflight=50) as publisher:
        publisher.connect(amqtt_broker.host, amqtt_broker.port)
        assert publisher.publish_all(batches) == 2_000
        assert publisher.flush(timeout=30.0)
        assert publisher.readings_sent == publisher.readings_acked == 2_000
        assert publisher.messages_acked == publisher.messages_sent == len(batches)
        assert publisher.inflight == 0
    assert subscriber.wait_for(2_000) == 2_000
    assert subscriber.rejections == 0
    sent = {(r.gateway, r.site, r.seq) for b in batches for r in b.readings}
    assert {(r.gateway, r.site, r.seq) for r in subscriber.readings} == sent


def test_a_tiny_in_flight_window_still_delivers_everything(
    amqtt_broker: Any, subscriber: Subscriber, shipped_fleet: Fleet
) -> None:
    batches = first_batches(shipped_fleet, 600, batch_size=10)
    publisher = GatewayPublisher(client_id="edge-sim-test-window", max_inflight=2)
    publisher.connect(amqtt_broker.host, amqtt_broker.port)
    try:
        most_inflight = 0
        for batch in batches:
            publisher.publish_batch(*batch)
            most_inflight = max(most_inflight, publisher.inflight)
        assert most_inflight <= 2
        assert publisher.flush(timeout=30.0)
        assert publisher.readings_acked == 600
    finally:
        publisher.close()
    assert subscriber.wait_for(600) == 600


def test_an_empty_batch_is_refused(amqtt_broker: Any) -> None:
    with GatewayPublisher(client_id="edge-sim-test-empty") as publisher:
        publisher.connect(amqtt_broker.host, amqtt_broker.port)
        with pytest.raises(ValueError, match="at least one reading"):
            publisher.publish_batch("acme", "north", "gw-01", [])


def test_no_broker_is_a_connect_error(unused_tcp_port: int) -> None:
    publisher = GatewayPublisher(client_id="edge-sim-test-nobody")
    with pytest.raises(ConnectError, match=f"127.0.0.1:{unused_tcp_port}"):
        publisher.connect("127.0.0.1", unused_tcp_port, timeout=2.0)


def test_publishing_resumes_after_the_broker_restarts(
    unused_tcp_port: int, start_amqtt: Any, shipped_fleet: Fleet
) -> None:
    batches = first_batches(shipped_fleet, 1_000, batch_size=50)
    broker = start_amqtt(unused_tcp_port)
    publisher = GatewayPublisher(client_id="edge-sim-test-restart", max_inflight=100)
    publisher.connect("127.0.0.1", unused_tcp_port)
    try:
        publisher.publish_all(batches[:10])
        assert publisher.flush(timeout=30.0)
        broker.stop()
        # Published while the broker is away: paho keeps them and sends them after reconnecting.
        publisher.publish_all(batches[10:])
        broker = start_amqtt(unused_tcp_port)
        assert publisher.flush(timeout=60.0)
        assert publisher.readings_acked == 1_000
        assert publisher.connections >= 2
    finally:
        publisher.close()
