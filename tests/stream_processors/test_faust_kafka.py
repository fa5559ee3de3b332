"""Kafka-backed tests: forwarder -> Kafka -> Faust worker, against a real broker.

They run when ``CALSTREAM_TEST_KAFKA`` names a Kafka bootstrap address (``host:port``), and are
skipped, with that reason, otherwise: no Kafka broker can be installed on the build machine.
Topics and the Faust app id are unique per run, so a broker can be reused.
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
import uuid
from pathlib import Path

import pytest

from calstream.servers.mosquitto import LocalMosquitto
from ingest.forward_sinks import KafkaForwardSink

KAFKA = os.environ.get("CALSTREAM_TEST_KAFKA")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not KAFKA,
        reason="CALSTREAM_TEST_KAFKA is not set: no Kafka broker to test against "
        "(set it to host:port of a broker to run the Kafka-backed tests)",
    ),
]
ROOT = Path(__file__).resolve().parents[2]


def test_kafka_sink_records_are_acknowledged_and_read_back_keyed() -> None:
    from aiokafka import AIOKafkaConsumer

    assert KAFKA is not None
    topic = f"calstream-test-{uuid.uuid4().hex[:8]}"
    sink = KafkaForwardSink(KAFKA, topic, f"{topic}-dead")
    records = [(f"acme/i-{n % 7}", {"v": 1, "n": n}) for n in range(500)]
    try:
        sink.forward(records, [("acme", {"reason": "malformed_json"})])
    finally:
        sink.close()

    async def read_back() -> list[tuple[str, dict]]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=KAFKA, auto_offset_reset="earliest")
        await consumer.start()
        got: list[tuple[str, dict]] = []
        try:
            while len(got) < len(records):
                batch = await consumer.getmany(timeout_ms=5_000)
                if not batch:
                    break
                for messages in batch.values():
                    got += [(m.key.decode(), json.loads(m.value)) for m in messages]
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(read_back())
    assert sorted(got, key=lambda r: r[1]["n"]) == records


def test_forwarder_to_kafka_to_worker_stores_every_reading(
    mosquitto: LocalMosquitto, example_fleet, tmp_path: Path
) -> None:
    """`calstream ingest` and `calstream worker` as processes: every published reading stored."""
    from tests.ingest.test_shared_subscription import publish_day

    run_id = uuid.uuid4().hex[:8]
    db = tmp_path / "store.sqlite"
    env = {
        **os.environ,
        "CALSTREAM_KAFKA": KAFKA or "",
        "CALSTREAM_BROKER": mosquitto.url,
        "CALSTREAM_TOPIC_READINGS": f"calstream-test-{run_id}.readings",
        "CALSTREAM_TOPIC_CALIBRATIONS": f"calstream-test-{run_id}.calibrations",
        "CALSTREAM_TOPIC_DEAD_LETTERS": f"calstream-test-{run_id}.dead-letters",
        "CALSTREAM_TOPIC_PARTITIONS": "4",
        "CALSTREAM_FAUST_APP_ID": f"calstream-test-{run_id}",
        "CALSTREAM_FAUST_STORE": "memory://",
        "CALSTREAM_INGEST_CLIENT_ID": f"ingest-{run_id}",
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
            assert ingest.poll() is None and time.monotonic() < deadline
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
