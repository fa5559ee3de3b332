"""Kafka-backed tests: forwarder -> Kafka -> Faust worker, against a real broker.

The broker is the session's ``kafka`` fixture (``tests/stream_processors/conftest.py``): an
Apache Kafka started from the jars ``make test-servers`` installs, or the broker
``CALSTREAM_TEST_KAFKA`` names. Topics and Faust app ids are unique per test, so a broker can be
reused. The last test checks what the fault tests rely on: the test broker stopped (SIGTERM) or
killed (SIGKILL) and started again still serves every record it acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers.kafka import KafkaForTest, LocalKafka

from calstream.errors import ServiceError
from calstream.runtime.scale_out import declare_topics
from calstream.servers.mosquitto import LocalMosquitto
from calstream.settings import Settings
from ingest.forward_sinks import KafkaForwardSink

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]


def read_back(bootstrap: str, topic: str, count: int) -> list[tuple[str, dict]]:
    """(key, JSON value) of the topic's records from the beginning, until ``count`` or 10 s idle."""
    from aiokafka import AIOKafkaConsumer

    async def read() -> list[tuple[str, dict]]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        got: list[tuple[str, dict]] = []
        try:
            while len(got) < count:
                batch = await consumer.getmany(timeout_ms=10_000)
                if not batch:
                    break
                for messages in batch.values():
                    got += [(m.key.decode(), json.loads(m.value)) for m in messages]
        finally:
            await consumer.stop()
        return got

    return asyncio.run(read())


def forward(bootstrap: str, topic: str, records: list[tuple[str, dict]]) -> None:
    """Write records as a forwarder does: returns once all in-sync replicas acknowledged them."""
    sink = KafkaForwardSink(bootstrap, topic, f"{topic}-dead")
    try:
        sink.forward(records, [])
    finally:
        sink.close()


def test_kafka_sink_records_are_acknowledged_and_read_back_keyed(kafka: KafkaForTest) -> None:
    topic = kafka.name("readings")
    dead = kafka.name("dead-letters")
    sink = KafkaForwardSink(kafka.bootstrap, topic, dead)
    records = [(f"acme/i-{n % 7}", {"v": 1, "n": n}) for n in range(500)]
    try:
        sink.forward(records, [("acme", {"reason": "malformed_json"})])
    finally:
        sink.close()

    got = read_back(kafka.bootstrap, topic, len(records))
    assert sorted(got, key=lambda r: r[1]["n"]) == records
    assert read_back(kafka.bootstrap, dead, 1) == [("acme", {"reason": "malformed_json"})]


def test_declare_topics_creates_the_topics_with_the_configured_partitions(
    kafka: KafkaForTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `calstream worker` and `calstream ingest` do at start: their topics created once,
    calibrations and changelogs compacted; an existing topic with another count refused."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    names = ("readings", "calibrations", "dead-letters", "app-instrument-state-changelog")
    topics = {what: kafka.name(what) for what in names}
    changelog = topics["app-instrument-state-changelog"]
    monkeypatch.setenv("CALSTREAM_KAFKA", kafka.bootstrap)
    monkeypatch.setenv("CALSTREAM_TOPIC_READINGS", topics["readings"])
    monkeypatch.setenv("CALSTREAM_TOPIC_CALIBRATIONS", topics["calibrations"])
    monkeypatch.setenv("CALSTREAM_TOPIC_DEAD_LETTERS", topics["dead-letters"])
    monkeypatch.setenv("CALSTREAM_TOPIC_PARTITIONS", "3")
    declare_topics(Settings(), [changelog])
    declare_topics(Settings(), [changelog])  # another process starting: nothing to create

    async def describe() -> tuple[dict[str, int], dict[str, str]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics(list(topics.values()))
            responses = await admin.describe_configs(
                [
                    ConfigResource(ConfigResourceType.TOPIC, topic, {"cleanup.policy": None})
                    for topic in topics.values()
                ]
            )
        finally:
            await admin.close()
        policies = {
            resource["resource_name"]: entry["config_value"]
            for response in responses
            for resource in response.to_object()["resources"]
            for entry in resource["config_entries"]
        }
        return {t["topic"]: len(t["partitions"]) for t in described}, policies

    partitions, policies = asyncio.run(describe())
    assert partitions == dict.fromkeys(topics.values(), 3)
    assert policies == {
        topics["readings"]: "delete",
        topics["calibrations"]: "compact",
        topics["dead-letters"]: "delete",
        changelog: "compact",
    }

    monkeypatch.setenv("CALSTREAM_TOPIC_PARTITIONS", "5")
    with pytest.raises(ServiceError, match="has 3 partitions, CALSTREAM_TOPIC_PARTITIONS says 5"):
        declare_topics(Settings())


def test_forwarder_to_kafka_to_worker_stores_every_reading(
    kafka: KafkaForTest, mosquitto: LocalMosquitto, example_fleet, tmp_path: Path
) -> None:
    """`calstream ingest` and `calstream worker` as processes: every published reading stored."""
    from tests.ingest.test_shared_subscription import publish_day

    db = tmp_path / "store.sqlite"
    env = {
        **os.environ,
        "CALSTREAM_KAFKA": kafka.bootstrap,
        "CALSTREAM_BROKER": mosquitto.url,
        "CALSTREAM_TOPIC_READINGS": kafka.name("readings"),
        "CALSTREAM_TOPIC_CALIBRATIONS": kafka.name("calibrations"),
        "CALSTREAM_TOPIC_DEAD_LETTERS": kafka.name("dead-letters"),
        "CALSTREAM_TOPIC_PARTITIONS": "4",
        "CALSTREAM_FAUST_APP_ID": kafka.name("app"),
        "CALSTREAM_FAUST_STORE": "memory://",
        "CALSTREAM_INGEST_CLIENT_ID": kafka.name("ingest"),
        "CALSTREAM_STORE": f"sqlite:///{db}",
        "CALSTREAM_WORK_DIR": str(tmp_path),
        "CALSTREAM_LOG_LEVEL": "INFO",
    }
    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in ("worker", "ingest")}
    worker = subprocess.Popen(
        [sys.executable, "-m", "calstream", "worker"], env=env, cwd=ROOT,
        stdout=logs["worker"], stderr=subprocess.STDOUT,
    )  # fmt: skip
    ingest = subprocess.Popen(
        [sys.executable, "-m", "calstream", "ingest"], env=env, cwd=ROOT,
        stdout=logs["ingest"], stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "subscribed to $share" not in (tmp_path / "ingest.log").read_text():
            assert ingest.poll() is None and time.monotonic() < deadline, (
                tmp_path / "ingest.log"
            ).read_text()[-3000:]
            time.sleep(0.2)
        sent, _ = publish_day(mosquitto, example_fleet)
        deadline = time.monotonic() + 180
        stored = 0
        while stored < len(sent) and time.monotonic() < deadline:
            time.sleep(1.0)
            if db.exists():
                with sqlite3.connect(db, timeout=10) as connection:
                    try:
                        (stored,) = connection.execute("SELECT count(*) FROM readings").fetchone()
                    except sqlite3.OperationalError:
                        stored = 0
    finally:
        for process in (ingest, worker):
            process.send_signal(signal.SIGTERM)
        for process in (ingest, worker):
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
    assert stored == len(sent), (tmp_path / "worker.log").read_text()[-3000:]


@pytest.fixture
def restartable_kafka(kafka: KafkaForTest, tmp_path: Path) -> Iterator[LocalKafka]:
    """The session's broker, or one of this test's own beside an outside broker."""
    if kafka.server is not None:
        yield kafka.server
        return
    try:
        server = LocalKafka(tmp_path / "kafka")
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    server.start()
    try:
        yield server
    finally:
        server.kill()


def test_restarted_broker_serves_the_records_it_acknowledged(
    restartable_kafka: LocalKafka, kafka: KafkaForTest
) -> None:
    """stop() (SIGTERM) and kill() (SIGKILL), each followed by start() on the same ports and
    folder: every record acknowledged before is read back, in order per key."""
    server = restartable_kafka
    topic = kafka.name("restart")
    port, controller_port = server.port, server.controller_port
    before = [(f"acme/i-{n % 3}", {"n": n}) for n in range(200)]
    forward(server.bootstrap, topic, before)

    server.stop()
    assert not server.running
    assert (server.data / ".kafka_cleanshutdown").exists()  # a graceful shutdown
    server.start()
    assert (server.port, server.controller_port) == (port, controller_port)
    assert sorted(read_back(server.bootstrap, topic, 200), key=lambda r: r[1]["n"]) == before

    after = [(f"acme/i-{n % 3}", {"n": n}) for n in range(200, 300)]
    forward(server.bootstrap, topic, after)
    server.kill()
    assert not server.running
    server.start()
    got = read_back(server.bootstrap, topic, 300)
    assert sorted(got, key=lambda r: r[1]["n"]) == before + after
    for key in ("acme/i-0", "acme/i-1", "acme/i-2"):  # one partition per key: order kept
        numbers = [value["n"] for k, value in got if k == key]
        assert numbers == sorted(numbers) and len(numbers) == len({*numbers})
