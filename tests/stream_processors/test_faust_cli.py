"""The scale-out commands without Kafka: a clear error naming the address, never a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from calstream.settings import Settings
from ingest.forward_sinks import KafkaForwardSink, KafkaUnavailable

ROOT = Path(__file__).resolve().parents[2]
NOWHERE = "127.0.0.1:9"  # discard port: nothing listens


@pytest.mark.parametrize("command", [["worker"], ["run", "--engine", "faust"]])
def test_worker_without_kafka_exits_with_an_error_naming_the_address(
    command: list[str], tmp_path: Path
) -> None:
    env = {**os.environ, "CALSTREAM_KAFKA": NOWHERE, "CALSTREAM_WORK_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "calstream", *command],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    err = " ".join(done.stderr.split())
    assert done.returncode == 2
    assert f"no Kafka broker answered at {NOWHERE}" in err and "CALSTREAM_KAFKA" in err
    assert "Traceback" not in done.stderr


def test_kafka_sink_names_the_bootstrap_address_when_no_broker_answers() -> None:
    with pytest.raises(KafkaUnavailable, match=re.escape(f"no Kafka broker answered at {NOWHERE}")):
        KafkaForwardSink(NOWHERE, "readings", "dead-letters", connect_timeout_s=3)


def test_kafka_settings_come_from_calstream_kafka(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALSTREAM_KAFKA", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("CALSTREAM_SHARED_GROUP", "plant-7")
    settings = Settings()
    assert settings.kafka_bootstrap == "kafka-1:9092,kafka-2:9092"
    assert settings.shared_group == "plant-7"
    assert settings.topic_readings == "calstream.readings"


def test_worker_app_is_built_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `calstream worker` starts: topics, partitions, store and Kafka addresses as set."""
    from calstream.runtime.scale_out import worker_app

    monkeypatch.setenv("CALSTREAM_KAFKA", "kafka-1:9092,kafka-2:9093")
    monkeypatch.setenv("CALSTREAM_STORE", f"sqlite:///{tmp_path / 'store.sqlite'}")
    monkeypatch.setenv("CALSTREAM_TOPIC_READINGS", "plant.readings")
    monkeypatch.setenv("CALSTREAM_TOPIC_PARTITIONS", "6")
    monkeypatch.setenv("CALSTREAM_FAUST_APP_ID", "plant-7")
    engine = worker_app(Settings(), data_dir=tmp_path / "faust")
    conf = engine.app.conf
    assert [str(url) for url in conf.broker] == ["kafka://kafka-1:9092", "kafka://kafka-2:9093"]
    assert conf.id == "plant-7" and str(conf.store) == "rocksdb:"
    assert engine.readings_topic.get_topic_name() == "plant.readings"
    assert engine.states.partitions == 6
    assert (tmp_path / "store.sqlite").exists()


def test_partition_of_is_kafkas_default_partitioner() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    from stream_processors.faust_app import partition_of

    partitions = list(range(12))
    for key in ("acme/acme-north-TT-001", "acme/peers:acme-north-PT-pg01", "nordfab/x"):
        assert partition_of(key, 12) == DefaultPartitioner()(key.encode(), partitions, partitions)
