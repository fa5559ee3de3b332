"""Every field of every message hostile, through a real mosquitto into `calstream run`.

One service process takes every drawn example (hypothesis), as a factory's broker would feed it
over a day: hostile topics, envelopes, readings and encodings mixed with valid readings of the
fleet, some of them sent twice. After each example, from the service's own /metrics and from its
store:

- the service is up (the process runs and answers);
- every message sent on a readings topic was taken (messages received == published there);
- readings received == accepted + rejected, and at least what the messages count;
- accepted == stored + duplicates (nothing accepted is lost), and the dead letters in the store
  count exactly the rejected readings;
- every stored value is finite and inside its instrument's plausible range.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub
from prometheus_client.parser import text_string_to_metric_families
from service_process import RawPublisher, Run, wait_for

from calstream.servers.base import free_port
from calstream.servers.mosquitto import LocalMosquitto
from metrology.fleet import Fleet
from metrology.timebase import iso
from metrology.wire import READINGS_SUBSCRIPTION, readings_topic
from tests.ingest.hostile import HostileMessage, hostile_messages

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(600)]

NOW = time.time()


class Service:
    """`calstream run` on a real mosquitto, its metrics on a free port."""

    def __init__(self, broker: LocalMosquitto, folder: Path) -> None:
        self.metrics_port = free_port()
        self.run = Run(
            broker,
            folder,
            client_id="calstream-fuzzed",
            env={"CALSTREAM_METRICS_PORT": str(self.metrics_port)},
        )
        self.publisher = RawPublisher(broker, "hostile-gateways")
        self.seq = 10_000_000

    def metrics(self) -> dict[str, float]:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        found: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.startswith("calstream_") and not sample.labels:
                    found[sample.name.removesuffix("_total")] = sample.value
                elif sample.name.startswith("calstream_readings_rejected"):
                    found["calstream_readings_rejected"] = (
                        found.get("calstream_readings_rejected", 0.0) + sample.value
                    )
        return found

    def store_counts(self) -> tuple[int, int]:
        """Readings stored, and readings the dead letters stand for."""
        with sqlite3.connect(self.run.db) as conn:
            readings = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
            dead = conn.execute("SELECT coalesce(sum(count), 0) FROM dead_letters").fetchone()[0]
        return int(readings), int(dead)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("fuzzed-service")
    broker = LocalMosquitto(folder / "mosquitto")
    broker.start()
    (folder / "service").mkdir()
    service = Service(broker, folder / "service")
    service.run.start()
    try:
        yield service
    finally:
        service.publisher.close()
        if service.run.process is not None and service.run.process.poll() is None:
            service.run.signal(15)
        broker.kill()


def valid_message(fleet: Fleet, seq: int, index: int) -> HostileMessage:
    """A valid message of one instrument of ``fleet`` (value inside its range)."""
    spec = list(fleet.instruments.values())[index % len(fleet.instruments)]
    low = spec.measuring_range.low if spec.measuring_range else 0.0
    high = spec.measuring_range.high if spec.measuring_range else 1.0
    body = {
        "v": 1,
        "tenant": spec.tenant,
        "site": spec.site,
        "gateway": spec.gateway,
        "readings": [
            {
                "instrument": spec.instrument_id,
                "ts": iso(NOW - 3600.0 + index),
                "value": (low + high) / 2.0,
                "unit": spec.unit,
                "seq": seq,
            }
        ],
    }
    return HostileMessage(
        readings_topic(spec.tenant, spec.site, spec.gateway), json.dumps(body).encode(), 1
    )


def example_fleet_strategy(fleet: Fleet) -> st.SearchStrategy[list[HostileMessage]]:
    return st.lists(hostile_messages(fleet, NOW, publishable=True), min_size=1, max_size=8)


@pytest.mark.usefixtures("service")
def test_hostile_gateways_cannot_stop_or_corrupt_the_service(
    service: Service, example_fleet: Fleet
) -> None:
    checked = {"examples": 0}

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @given(
        hostile=example_fleet_strategy(example_fleet),
        valid=st.integers(0, 3),
        resend=st.booleans(),
        index=st.integers(0, 10_000),
    )
    def example(hostile: list[HostileMessage], valid: int, resend: bool, index: int) -> None:
        before = service.metrics()
        messages = list(hostile)
        for n in range(valid):
            service.seq += 1
            messages.append(valid_message(example_fleet, service.seq, index + n))
        if resend and messages:
            messages.append(messages[0])  # the same message again (a gateway after a crash)
        for message in messages:
            service.publisher.publish(message.topic, message.payload)
        service.publisher.flush()
        # What the broker hands the service: messages on a readings topic (the ones on other
        # topics are the ACL's business, docs/deploy.md, and reach no subscriber here).
        delivered = [m for m in messages if topic_matches_sub(READINGS_SUBSCRIPTION, m.topic)]
        sent = len(delivered)

        def taken() -> bool:
            now = service.metrics()
            received = now["calstream_messages_received"] - before["calstream_messages_received"]
            accepted = now["calstream_readings_accepted"] - before["calstream_readings_accepted"]
            done = now["calstream_readings_stored"] + now["calstream_readings_duplicate"]
            done -= before["calstream_readings_stored"] + before["calstream_readings_duplicate"]
            return received >= sent and done >= accepted

        assert wait_for(taken, 30), (service.metrics(), before, sent)
        after = service.metrics()

        def delta(name: str) -> float:
            return after.get(name, 0.0) - before.get(name, 0.0)

        assert service.run.process is not None and service.run.process.poll() is None
        assert delta("calstream_messages_received") == sent
        received = delta("calstream_readings_received")
        accepted, rejected = (
            delta("calstream_readings_accepted"),
            delta("calstream_readings_rejected"),
        )
        assert received == accepted + rejected
        assert received >= sum(m.readings or 1 for m in delivered)
        stored, duplicates = (
            delta("calstream_readings_stored"),
            delta("calstream_readings_duplicate"),
        )
        assert accepted == stored + duplicates
        checked["examples"] += 1

    example()
    assert checked["examples"] == 40
    metrics = service.metrics()
    stored, dead = service.store_counts()
    assert stored == metrics["calstream_readings_stored"]
    assert dead == metrics["calstream_readings_rejected"]
    assert metrics["calstream_readings_accepted"] > 0 and dead > 0
    with sqlite3.connect(service.run.db) as conn:
        values = conn.execute("SELECT instrument_id, value, corrected FROM readings").fetchall()
    for instrument_id, value, corrected in values:
        spec = example_fleet.instruments[instrument_id]
        assert math.isfinite(value) and math.isfinite(corrected), (instrument_id, value)
        if spec.measuring_range is not None:
            low, high = spec.measuring_range.plausible
            assert low <= value <= high, (instrument_id, value, low, high)
