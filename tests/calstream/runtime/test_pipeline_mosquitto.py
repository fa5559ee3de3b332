"""The embedded pipeline against a real mosquitto: good and hostile input in the same run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from calstream.servers.mosquitto import LocalMosquitto
from calstream.settings import Settings
from calstream.wiring import pipeline_for, subscriber_for
from edge_sim.gateway import GatewayPublisher
from edge_sim.simulator import FleetSimulator
from ingest.subscriber import DurableSubscriber
from metrology.fleet import Fleet
from metrology.timebase import SECONDS_PER_DAY, iso
from metrology.wire import READINGS_SUBSCRIPTION, encode, readings_topic
from storage.sqlite_store import SqliteStore


def _hostile_messages(fleet: Fleet, ts: float) -> dict[str, tuple[str, bytes]]:
    """One message per kind of bad input, each expected to land with its own reason."""
    spec = next(iter(fleet.instruments.values()))
    other = next(
        s for s in fleet.instruments.values() if (s.tenant, s.site) != (spec.tenant, spec.site)
    )
    topic = readings_topic(spec.tenant, spec.site, spec.gateway)

    def one(**reading: object) -> bytes:
        body = {
            "instrument": spec.instrument_id,
            "ts": iso(ts),
            "value": 1.0,
            "unit": spec.unit,
            "seq": 9_000_000,
        }
        body.update(reading)
        return json.dumps(
            {
                "v": 1,
                "tenant": spec.tenant,
                "site": spec.site,
                "gateway": spec.gateway,
                "readings": [body],
            },
            allow_nan=True,
        ).encode()

    wrong_dimension = "m" if spec.unit != "m" else "s"
    return {
        "malformed_json": (topic, b'{"v": 1, "readings": [ {"instrument": '),
        "not_an_object": (topic, b'"just a string"'),
        "unsupported_version": (topic, one().replace(b'"v": 1', b'"v": 7')),
        "tenant_mismatch": (
            topic,
            one().replace(f'"tenant": "{spec.tenant}"'.encode(), b'"tenant": "intruder"'),
        ),
        "not_finite": (topic, one(value=float("nan"))),
        "wrong_type": (topic, one(value="twenty")),
        "timestamp_not_utc": (topic, one(ts="2026-03-01T10:00:00+05:30")),
        "timestamp_out_of_range": (topic, one(ts=iso(ts + 30 * SECONDS_PER_DAY), seq=9_000_001)),
        "unknown_instrument": (topic, one(instrument="no-such-instrument")),
        "instrument_elsewhere": (topic, one(instrument=other.instrument_id, unit=other.unit)),
        "unit_not_convertible": (topic, one(unit=wrong_dimension, seq=9_000_002)),
        "unknown_unit": (topic, one(unit="bogons", seq=9_000_003)),
        "bad_identifier": (topic, one(instrument="bad\u0000id\u0007")),
        "oversized_payload": (topic, b"{" + b" " * 300_000 + b"}"),
        "bad_topic": (f"calstream/v1/{spec.tenant}/{spec.site}/gate way/readings", one()),
    }


def test_good_and_hostile_input_in_one_run(
    mosquitto: LocalMosquitto, example_fleet: Fleet, tmp_path: Path
) -> None:
    fleet = example_fleet
    end = fleet.as_of or 0.0
    settings = Settings(max_future_s=3_600.0)
    store = SqliteStore(tmp_path / "store.sqlite")
    store.register_fleet(fleet)
    subscriber = subscriber_for(settings, mosquitto.host, mosquitto.port, "pipeline-test")
    clock_now = end  # the receiver's clock sits at the end of the simulated window
    pipeline = pipeline_for(fleet, settings, store, subscriber, clock=lambda: clock_now)
    pipeline.start()

    simulator = FleetSimulator(fleet, seed=3, start=end - 20 * SECONDS_PER_DAY, end=end)
    publisher = GatewayPublisher(client_id="gateways-test")
    publisher.connect(mosquitto.host, mosquitto.port)
    hostile = _hostile_messages(fleet, end - SECONDS_PER_DAY)
    raw = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="hostile-test")
    raw.connect(mosquitto.host, mosquitto.port)
    raw.loop_start()
    for index, (tenant, site, gateway, readings) in enumerate(simulator):
        publisher.publish_batch(tenant, site, gateway, readings)
        if index == 50:  # hostile input interleaved with good traffic
            for topic, payload in hostile.values():
                raw.publish(topic, payload, qos=1).wait_for_publish(10)
    assert publisher.flush(60)
    published = publisher.readings_acked
    expected_rejected = len(hostile)
    deadline = time.monotonic() + 60
    while (
        pipeline.counters.received < published + expected_rejected and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    pipeline.stop()
    raw.loop_stop()
    publisher.close()
    subscriber.stop()

    assert pipeline.error is None
    by_reason = store.dead_letters_by_reason()
    assert by_reason == {reason: 1 for reason in hostile}
    assert store.reading_count() == published
    assert pipeline.counters.received == published + expected_rejected
    assert pipeline.counters.accepted + pipeline.counters.rejected == pipeline.counters.received
    letters = {d.reason.value: d for d in store.recent_dead_letters(50)}
    assert letters["tenant_mismatch"].topic == hostile["tenant_mismatch"][0]
    assert "intruder" in letters["tenant_mismatch"].detail
    assert letters["oversized_payload"].excerpt.startswith("{")
    assert len(letters["oversized_payload"].excerpt) <= 201
    store.close()


@pytest.mark.parametrize("kill_after", [1])
def test_nothing_is_acknowledged_before_it_is_stored(
    mosquitto: LocalMosquitto, example_fleet: Fleet, tmp_path: Path, kill_after: int
) -> None:
    """A pipeline that dies between receipt and commit gets everything again from the broker."""
    fleet = example_fleet
    end = fleet.as_of or 0.0
    settings = Settings(max_future_s=3_600.0)
    readings = []
    simulator = FleetSimulator(fleet, seed=4, start=end - 3 * SECONDS_PER_DAY, end=end)
    publisher = GatewayPublisher(client_id="gateways-ack-test")
    publisher.connect(mosquitto.host, mosquitto.port)
    first = DurableSubscriber(
        mosquitto.host, mosquitto.port, client_id="pipeline-ack", topic=READINGS_SUBSCRIPTION
    )
    first.start()
    for tenant, site, gateway, batch in simulator:
        publisher.publish_batch(tenant, site, gateway, batch)
        readings.extend(batch)
    assert publisher.flush(30)
    taken = first.get_batch(10_000, timeout=5.0)
    assert taken  # received, but never written nor acknowledged: the process "dies" here
    first.client.disconnect()
    first.client.loop_stop()

    store = SqliteStore(tmp_path / "store.sqlite")
    store.register_fleet(fleet)
    second = subscriber_for(settings, mosquitto.host, mosquitto.port, "pipeline-ack")
    pipeline = pipeline_for(fleet, settings, store, second, clock=lambda: end)
    deadline = time.monotonic() + 30
    while store.reading_count() < len(readings) and time.monotonic() < deadline:
        pipeline.run_once(0.2)
    second.stop()
    publisher.close()
    assert store.reading_count() == len(readings)
    assert pipeline.counters.rejected == 0
    store.close()
    _ = encode  # the payloads above come from the same contract module


def test_a_locked_store_holds_the_pipeline_back_and_loses_nothing(
    mosquitto: LocalMosquitto, example_fleet: Fleet, tmp_path: Path
) -> None:
    """Another writer holds the SQLite lock for 3 s: writes fail, are retried, nothing is lost."""
    import sqlite3

    fleet = example_fleet
    end = fleet.as_of or 0.0
    settings = Settings()
    path = tmp_path / "store.sqlite"
    store = SqliteStore(path, busy_timeout_ms=100)
    store.register_fleet(fleet)
    subscriber = subscriber_for(settings, mosquitto.host, mosquitto.port, "locked-store")
    pipeline = pipeline_for(fleet, settings, store, subscriber, clock=lambda: end)
    pipeline.start(write_behind=True)
    publisher = GatewayPublisher(client_id="gateways-locked-store")
    publisher.connect(mosquitto.host, mosquitto.port)
    batches = list(FleetSimulator(fleet, seed=6, start=end - 10 * SECONDS_PER_DAY, end=end))

    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute(
        "BEGIN IMMEDIATE"
    )  # the write lock, as a backup tool or a stuck writer takes it
    publisher.publish_all(batches)
    assert publisher.flush(30)
    time.sleep(3.0)
    assert store.reading_count() == 0  # nothing could be written...
    assert pipeline.counters.stored == 0
    assert pipeline.write_backlog <= 2  # ...and the hand-over queue stayed bounded
    blocker.execute("ROLLBACK")
    blocker.close()

    deadline = time.monotonic() + 60
    while store.reading_count() < publisher.readings_acked and time.monotonic() < deadline:
        time.sleep(0.05)
    pipeline.stop()
    publisher.close()
    subscriber.stop()
    assert pipeline.error is None
    assert store.reading_count() == publisher.readings_acked
    assert pipeline.counters.stored == publisher.readings_acked
    store.close()
