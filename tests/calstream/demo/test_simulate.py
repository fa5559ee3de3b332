"""`calstream simulate`: the fleet's gateways publish to a real mosquitto; every reading arrives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from calstream.servers.mosquitto import LocalMosquitto
from ingest.decoders.json_v1 import decode


def test_simulated_gateways_deliver_every_reading_they_report(
    mosquitto: LocalMosquitto, tmp_path: Path
) -> None:
    received: Counter[str] = Counter()
    lock = threading.Lock()
    subscribed = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        decoded = decode(message.topic, message.payload)
        with lock:
            received["messages"] += 1
            received["readings"] += len(decoded.readings)
            received["rejected"] += len(decoded.rejections)

    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="watch")
    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect(mosquitto.host, mosquitto.port)
    client.subscribe("calstream/v1/+/+/+/readings", qos=1)
    client.loop_start()
    assert subscribed.wait(10)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "calstream", "simulate", "--broker", mosquitto.url,
             "--history-days", "2", "--speedup", "200000", "--duration", "4",
             "--spool", str(tmp_path / "spool.sqlite")],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "CALSTREAM_WORK_DIR": str(tmp_path)},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        assert summary["published_readings"] > 1000
        assert summary["acknowledged_readings"] == summary["published_readings"]
        deadline = threading.Event()
        for _ in range(100):
            with lock:
                if received["readings"] >= summary["published_readings"]:
                    break
            deadline.wait(0.1)
    finally:
        client.loop_stop()
        client.disconnect()
    assert received["readings"] == summary["published_readings"]
    assert received["rejected"] == 0
