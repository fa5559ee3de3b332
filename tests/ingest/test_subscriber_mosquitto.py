"""The durable subscription against a real mosquitto: persistent session, manual acknowledgement."""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from calstream.servers.mosquitto import LocalMosquitto
from ingest.subscriber import DurableSubscriber

TOPIC = "calstream/v1/acme/north/gw-01/readings"


def publish(broker: LocalMosquitto, count: int, start: int = 0) -> None:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="test-pub")
    client.connect(broker.host, broker.port)
    client.loop_start()
    infos = [client.publish(TOPIC, f"m{start + i}".encode(), qos=1) for i in range(count)]
    for info in infos:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def drain(
    subscriber: DurableSubscriber, expected: int, ack: bool, timeout: float = 15.0
) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        batch = subscriber.get_batch(500, 0.2)
        got.extend(m.payload for m in batch)
        if ack:
            subscriber.ack(batch)
    return got


def subscriber_for(broker: LocalMosquitto) -> DurableSubscriber:
    return DurableSubscriber(broker.host, broker.port, client_id="pipeline-under-test", topic=TOPIC)


def test_messages_published_while_away_arrive_after_restart(mosquitto: LocalMosquitto) -> None:
    first = subscriber_for(mosquitto)
    first.start()
    first.stop()  # the session stays with the broker
    publish(mosquitto, 3_000)  # more than mosquitto's default queue limit of 1000
    second = subscriber_for(mosquitto)
    second.start()
    got = drain(second, 3_000, ack=True)
    second.stop()
    assert len(got) == 3_000
    assert len(set(got)) == 3_000


def test_unacknowledged_messages_are_redelivered(mosquitto: LocalMosquitto) -> None:
    first = subscriber_for(mosquitto)
    first.start()
    publish(mosquitto, 200)
    received = drain(first, 200, ack=False)
    assert len(received) == 200
    first.client.disconnect()  # as if the process died before its store committed
    first.client.loop_stop()
    second = subscriber_for(mosquitto)
    second.start()
    redelivered = drain(second, 200, ack=True)
    second.stop()
    assert sorted(redelivered) == sorted(received)
    assert second.messages_acked == 200
