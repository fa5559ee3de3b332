"""Two real ingest processes share one MQTT 5 subscription on a real mosquitto.

``calstream ingest --sink sqlite:PATH`` is started twice, as two members of one shared
subscription, each with its own durable session and its own SQLite sink (a real, durable sink:
what Kafka is in production). A simulated day of the example fleet is published, with bad
messages among it. Every reading must come out exactly once across the two processes, each
process must have had a share, and every bad message must be a dead letter.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from calstream.servers.mosquitto import LocalMosquitto
from edge_sim.simulator import FleetSimulator
from metrology.fleet import Fleet
from metrology.timebase import SECONDS_PER_DAY
from metrology.wire import encode, readings_topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

GROUP = "ingest-under-test"
ROOT = Path(__file__).resolve().parents[2]


def start_forwarder(broker: LocalMosquitto, name: str, folder: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CALSTREAM_BROKER": broker.url,
        "CALSTREAM_SHARED_GROUP": GROUP,
        "CALSTREAM_INGEST_CLIENT_ID": name,
        "CALSTREAM_LOG_LEVEL": "INFO",
        "CALSTREAM_WORK_DIR": str(folder / name),
    }
    log = (folder / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "calstream", "ingest", "--sink", f"sqlite:{folder / name}.sqlite"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def forwarded(path: Path) -> tuple[list[tuple[str, float, int]], list[str]]:
    """(instrument, ts, seq) of every forwarded reading, and every dead letter's reason."""
    if not path.exists():
        return [], []
    with sqlite3.connect(path, timeout=10) as db:
        try:
            values = [json.loads(v) for (v,) in db.execute("SELECT value FROM forwarded")]
            reasons = [
                json.loads(v)["reason"] for (v,) in db.execute("SELECT value FROM dead_letters")
            ]
        except sqlite3.OperationalError:  # tables not created yet
            return [], []
    readings = [(r["instrument"], r["ts"], r["seq"]) for value in values for r in value["readings"]]
    return readings, reasons


def simulated_batches(fleet: Fleet, days: float = 1.0) -> list[tuple[str, str, str, list]]:
    end = fleet.as_of or 0.0
    simulator = FleetSimulator(
        fleet, seed=5, start=end - days * SECONDS_PER_DAY, end=end, batch_size=20
    )
    return list(simulator)


def publish(broker: LocalMosquitto, batches, bad_every: int = 40) -> tuple[Counter, int]:
    """Publish gateway batches at QoS 1, a malformed message every ``bad_every``; what was sent."""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="gateways")
    client.connect(broker.host, broker.port)
    client.loop_start()
    sent: Counter = Counter()
    infos = []
    bad = 0
    for n, (tenant, site, gateway, batch) in enumerate(batches):
        topic = readings_topic(tenant, site, gateway)
        infos.append(client.publish(topic, encode(tenant, site, gateway, batch), qos=1))
        sent.update((r.instrument_id, r.ts, r.seq) for r in batch)
        if n % bad_every == 0:
            infos.append(client.publish(topic, b'{"v": 1, "readings": [', qos=1))
            bad += 1
    for info in infos:
        info.wait_for_publish(30)
    client.disconnect()
    client.loop_stop()
    return sent, bad


def publish_day(broker: LocalMosquitto, fleet: Fleet) -> tuple[Counter, int]:
    """Publish a simulated day of the fleet and some bad messages; returns what was sent."""
    return publish(broker, simulated_batches(fleet))


def wait_until_subscribed(process: subprocess.Popen[bytes], log: Path) -> None:
    wait_for(
        lambda: process.poll() is None and f"subscribed to $share/{GROUP}/" in log.read_text(),
        60,
        f"{log.stem} to subscribe",
    )


def test_two_ingest_processes_share_the_subscription_and_forward_each_reading_once(
    mosquitto: LocalMosquitto, example_fleet: Fleet, tmp_path: Path
) -> None:
    names = ("ingest-a", "ingest-b")
    processes = [start_forwarder(mosquitto, name, tmp_path) for name in names]
    try:
        for name, process in zip(names, processes, strict=True):
            wait_until_subscribed(process, tmp_path / f"{name}.log")
        sent, bad = publish_day(mosquitto, example_fleet)
        assert len(sent) > 4_000 and bad > 5

        def all_forwarded() -> bool:
            outputs = [forwarded(tmp_path / f"{name}.sqlite") for name in names]
            got = sum(len(readings) for readings, _ in outputs)
            letters = sum(len(reasons) for _, reasons in outputs)
            return got >= len(sent) and letters >= bad

        wait_for(all_forwarded, 90, "every reading and dead letter to be forwarded")
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(30)

    assert [p.returncode for p in processes] == [0, 0], [
        (tmp_path / f"{n}.log").read_text()[-2000:] for n in names
    ]
    outputs = [forwarded(tmp_path / f"{name}.sqlite") for name in names]
    shares = [len(readings) for readings, _ in outputs]
    assert all(share > 0 for share in shares), shares
    received = Counter(r for readings, _ in outputs for r in readings)
    assert received == sent  # none lost, none twice: each reading forwarded exactly once
    assert max(received.values()) == 1
    reasons = Counter(reason for _, letters in outputs for reason in letters)
    assert reasons == {"malformed_json": bad}


def test_a_forwarder_killed_mid_stream_loses_nothing(
    mosquitto: LocalMosquitto, example_fleet: Fleet, tmp_path: Path
) -> None:
    """kill -9 of one member: what it had not acknowledged comes back; nothing is lost."""
    batches = simulated_batches(example_fleet, days=2.0)
    half = len(batches) // 2
    survivor = start_forwarder(mosquitto, "ingest-a", tmp_path)
    victim = start_forwarder(mosquitto, "ingest-b", tmp_path)
    restarted = None
    try:
        wait_until_subscribed(survivor, tmp_path / "ingest-a.log")
        wait_until_subscribed(victim, tmp_path / "ingest-b.log")
        sent, _ = publish(mosquitto, batches[:half])
        wait_for(
            lambda: len(forwarded(tmp_path / "ingest-b.sqlite")[0]) > 0, 60, "ingest-b to forward"
        )
        victim.kill()  # SIGKILL: no clean disconnect, unacknowledged messages stay in its session
        victim.wait(10)
        more, _ = publish(mosquitto, batches[half:])
        sent += more
        restarted = start_forwarder(mosquitto, "ingest-b", tmp_path)  # same client id
        wait_until_subscribed(restarted, tmp_path / "ingest-b.log")

        def everything_forwarded() -> bool:
            got = set()
            for name in ("ingest-a", "ingest-b"):
                got |= set(forwarded(tmp_path / f"{name}.sqlite")[0])
            return got >= set(sent)

        wait_for(everything_forwarded, 90, "every reading to be forwarded after the restart")
    finally:
        for process in (survivor, victim, restarted):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
    received = Counter()
    for name in ("ingest-a", "ingest-b"):
        received.update(forwarded(tmp_path / f"{name}.sqlite")[0])
    assert set(received) == set(sent)  # none lost
    # At least once: only what the killed member had forwarded but not acknowledged comes twice.
    assert sum(received.values()) - len(sent) < 0.5 * sum(sent.values())
