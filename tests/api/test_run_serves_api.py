"""`calstream run` serves the API in its own process while the pipeline runs.

A real `calstream run` against a real mosquitto: a token made by `calstream tokens create` (a
process of its own on the same store), an instrument registered and read back over HTTP, then a
reading of it published through the broker, processed by the running pipeline and read back as
the instrument's health.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import paho.mqtt.publish as publish
import pytest

from calstream.servers.base import free_port
from calstream.servers.mosquitto import LocalMosquitto
from metrology.wire import readings_topic

FLEET = """\
fleet: one instrument
tenants:
- id: acme
  sites:
  - id: north
    gateways: [{id: gw-01}]
    instruments:
    - {id: acme-north-TT-001, measurand: temperature, unit: degC, range: {low: 0, high: 200},
       tolerance: {mpe: 0.5}, period_s: 60, gateway: gw-01, reference: {kind: check_standard}}
"""
NEW_INSTRUMENT = {
    "tenant": "acme", "site": "north", "id": "acme-north-TT-100", "gateway": "gw-01",
    "measurand": "temperature", "unit": "degC", "range": {"low": 0, "high": 200},
    "tolerance": {"mpe": 0.5}, "period_s": 60, "reference": {"kind": "check_standard"},
}  # fmt: skip


def wait_for(predicate: object, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return bool(predicate())  # type: ignore[operator]


class Running:
    """`python -m calstream run` with the API on a free port, its log in a file."""

    def __init__(self, broker: LocalMosquitto, folder: Path) -> None:
        fleet = folder / "fleet.yaml"
        fleet.write_text(FLEET)
        self.api_port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CALSTREAM_")},
            "CALSTREAM_BROKER": broker.url,
            "CALSTREAM_WORK_DIR": str(folder),
            "CALSTREAM_FLEET": str(fleet),
            "CALSTREAM_CLIENT_ID": f"calstream-api-test-{self.api_port}",
            "CALSTREAM_METRICS_PORT": "0",
            "CALSTREAM_API_PORT": str(self.api_port),
        }
        self.log = folder / "run.log"
        self.url = f"http://127.0.0.1:{self.api_port}"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "calstream", "run", "--report-every", "1"],
                env=self.env, stdout=log, stderr=log,
            )  # fmt: skip

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "calstream", *args],
            env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(60)


@pytest.fixture
def running(mosquitto: LocalMosquitto, tmp_path: Path) -> Iterator[Running]:
    run = Running(mosquitto, tmp_path)
    try:
        assert wait_for(lambda: b"calstream running" in run.log.read_bytes(), 90), (
            run.log.read_text()
        )
        yield run
    finally:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait(30)


def test_run_serves_the_api_while_the_pipeline_runs(
    running: Running, mosquitto: LocalMosquitto
) -> None:
    assert f"API on {running.url}" in running.log.read_text()
    assert httpx.get(f"{running.url}/readyz").json() == {"status": "ok"}

    made = running.cli("tokens", "create", "--tenant", "acme", "--role", "admin")
    assert made.returncode == 0, made.stderr
    headers = {"Authorization": f"Bearer {made.stdout.strip()}"}
    with httpx.Client(base_url=running.url, headers=headers, timeout=30) as api:
        registered = api.post("/v1/instruments", json=NEW_INSTRUMENT)
        assert registered.status_code == 201, registered.text
        shown = api.get("/v1/instruments/acme-north-TT-100")
        assert shown.status_code == 200 and shown.json()["tolerance_upper"] == 0.5
        ids = [i["instrument_id"] for i in api.get("/v1/instruments").json()["items"]]
        assert ids == ["acme-north-TT-001", "acme-north-TT-100"]
        assert api.get("/v1/instruments/acme-north-TT-100/health").json()["status"] == "NO_DATA"

        # a reading of the new instrument through the broker, taken by the running pipeline
        now = datetime.now(UTC).replace(microsecond=0)
        payload = {
            "v": 1, "tenant": "acme", "site": "north", "gateway": "gw-01",
            "readings": [{"instrument": "acme-north-TT-100", "ts": now.isoformat(),
                          "value": 21.503, "unit": "degC", "seq": 1,
                          "reference": {"value": 21.5, "u": 0.01}}],
        }  # fmt: skip
        publish.single(
            readings_topic("acme", "north", "gw-01"), json.dumps(payload), qos=1,
            hostname=mosquitto.host, port=mosquitto.port,
        )  # fmt: skip

        def heard() -> bool:
            health = api.get("/v1/instruments/acme-north-TT-100/health").json()
            return health["last_reading_at"] == now.timestamp()

        assert wait_for(heard, 60), api.get("/v1/dead-letters").text
        health = api.get("/v1/instruments/acme-north-TT-100/health").json()
        assert health["status"] != "NO_DATA"
        assert health["numbers"]["residual"] == pytest.approx(0.003, abs=1e-9)
        dead = api.get("/v1/dead-letters").json()["items"]
        assert dead == [], dead
    assert running.stop() == 0
    assert "API on" in running.log.read_text()
