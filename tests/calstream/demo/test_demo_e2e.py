"""End to end: `calstream demo` (embedded amqtt, simulator, pipeline, SQLite), then `status`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from calstream.cli import app
from calstream.servers.mosquitto import LocalMosquitto
from edge_sim.truth import read_truth
from metrology.health import Status


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    db = tmp_path_factory.mktemp("demo") / "demo.sqlite"
    result = CliRunner().invoke(
        app,
        ["demo", "--duration", "5", "--sim-days", "45", "--seed", "1", "--db", str(db), "--json"],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    return summary, db


def test_every_published_reading_is_stored_or_rejected(demo_run: tuple[dict, Path]) -> None:
    summary, _ = demo_run
    assert summary["published"] > 100_000
    assert summary["stored"] + summary["rejected"] == summary["published"]
    assert summary["rejected"] == 0  # the simulated gateways send only valid readings


def test_fleet_health_covers_every_instrument(demo_run: tuple[dict, Path]) -> None:
    summary, _ = demo_run
    by_status = summary["instruments_by_status"]
    assert sum(by_status.values()) == 60
    assert by_status["NO_DATA"] == 0
    assert by_status[Status.UNVERIFIED] >= 1  # instruments without any reference
    assert by_status[Status.CAL_OVERDUE] >= 1  # the example fleet has overdue certificates
    assert summary["alerts"] > 0


def test_injected_drifts_are_flagged_before_they_leave_tolerance(
    demo_run: tuple[dict, Path],
) -> None:
    summary, _ = demo_run
    detection = summary["detection"]
    assert detection["injected_drifts"] >= 5
    assert detection["detected_before_oot"] >= 0.8 * detection["injected_drifts"]
    assert detection["stable_instruments"] >= 20
    assert detection["false_alarms"] <= 0.05 * detection["stable_instruments"]


def test_the_score_agrees_with_the_written_truth(demo_run: tuple[dict, Path]) -> None:
    summary, _ = demo_run
    truth = read_truth(summary["truth"])
    assert len(truth.instruments) == 60
    crossing = [
        t
        for t in truth.instruments.values()
        if t.true_oot_at is not None and t.reference_kind != "none"
    ]
    counted = summary["detection"]["injected_drifts"] + summary["detection"]["instant_shifts"]
    assert counted == len(crossing)


def test_status_reads_the_store(demo_run: tuple[dict, Path]) -> None:
    summary, db = demo_run
    result = CliRunner().invoke(app, ["status", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout.strip().splitlines()[-1])
    assert status["readings"] == summary["stored"]
    assert status["instruments_by_status"] == summary["instruments_by_status"]
    worst = status["worst"][0]
    assert worst["status"] == Status.OUT_OF_TOLERANCE
    assert worst["reasons"] and worst["numbers"]["residual"] is not None
    tenants = {site["tenant"] for site in status["sites"]}
    assert len(tenants) >= 2

    human = CliRunner().invoke(app, ["status", "--db", str(db)])
    assert human.exit_code == 0
    assert "OOT" in human.stdout and worst["instrument"] in human.stdout


def test_status_of_one_instrument_gives_every_number_behind_it(
    demo_run: tuple[dict, Path],
) -> None:
    _, db = demo_run
    fleet = json.loads(
        CliRunner().invoke(app, ["status", "--db", str(db), "--json"]).stdout.splitlines()[-1]
    )
    worst = fleet["worst"][0]
    result = CliRunner().invoke(
        app, ["status", "--db", str(db), "--instrument", worst["instrument"], "--json"]
    )
    assert result.exit_code == 0, result.output
    one = json.loads(result.stdout.strip().splitlines()[-1])
    assert one["status"] == worst["status"] and one["reasons"] == worst["reasons"]
    numbers = one["numbers"]
    assert numbers["decision_rule"] and numbers["probability_of_conformity"] is not None
    assert numbers["hours_in_use"] > 0 and "interval_reason" in numbers

    human = CliRunner().invoke(
        app, ["status", "--db", str(db), "--instrument", worst["instrument"]]
    )
    assert human.exit_code == 0
    for section in ("conformity", "detectors", "drift and dates", "calibration"):
        assert section in human.stdout

    unknown = CliRunner().invoke(app, ["status", "--db", str(db), "--instrument", "no-such"])
    assert unknown.exit_code == 2 and "no health stored for 'no-such'" in unknown.output


def test_status_without_a_store_says_what_to_do(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["status", "--db", str(tmp_path / "missing.sqlite")])
    assert result.exit_code == 2
    assert "calstream demo" in result.output


def test_demo_through_mosquitto_publishes_every_alert_on_its_tenants_topic(
    mosquitto: LocalMosquitto, tmp_path: Path
) -> None:
    received: list[tuple[str, dict]] = []
    listener = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id="alerts-test"
    )
    listener.on_message = lambda _c, _u, m: received.append((m.topic, json.loads(m.payload)))
    listener.connect(mosquitto.host, mosquitto.port)
    listener.subscribe("calstream/v1/+/alerts", qos=1)
    listener.loop_start()
    time.sleep(0.3)
    result = CliRunner().invoke(
        app,
        [
            "demo",
            "--duration",
            "3",
            "--sim-days",
            "30",
            "--seed",
            "2",
            "--broker",
            mosquitto.url,
            "--db",
            str(tmp_path / "demo.sqlite"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    deadline = time.monotonic() + 10
    while len(received) < summary["alerts"] and time.monotonic() < deadline:
        time.sleep(0.05)
    listener.loop_stop()
    assert summary["stored"] == summary["published"]
    assert summary["alerts"] > 0
    assert len(received) == summary["alerts"]
    for topic, event in received:
        assert topic == f"calstream/v1/{event['tenant']}/alerts"
        assert event["status"] in set(Status) and event["reasons"]


def test_metrics_and_health_answer_while_the_pipeline_runs(
    mosquitto: LocalMosquitto, example_fleet, tmp_path: Path
) -> None:
    import urllib.request

    from calstream.runtime.observability import serve
    from calstream.servers.base import free_port
    from calstream.settings import Settings
    from calstream.wiring import pipeline_for, subscriber_for
    from edge_sim.gateway import GatewayPublisher
    from edge_sim.simulator import FleetSimulator
    from storage.sqlite_store import SqliteStore

    settings = Settings()
    store = SqliteStore(tmp_path / "store.sqlite")
    store.register_fleet(example_fleet)
    subscriber = subscriber_for(settings, mosquitto.host, mosquitto.port, "metrics-test")
    pipeline = pipeline_for(example_fleet, settings, store, subscriber)
    pipeline.start()
    server = serve(pipeline, "127.0.0.1", free_port())
    assert server is not None

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(server.url + path, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    end = example_fleet.as_of or 0.0
    publisher = GatewayPublisher(client_id="metrics-test-gateways")
    publisher.connect(mosquitto.host, mosquitto.port)
    publisher.publish_all(FleetSimulator(example_fleet, 9, end - 86_400.0 * 5, end))
    assert publisher.flush(30)
    deadline = time.monotonic() + 30
    while pipeline.counters.stored < publisher.readings_acked and time.monotonic() < deadline:
        time.sleep(0.05)
    assert get("/healthz") == (200, "ok\n")
    assert get("/readyz") == (200, "ok\n")
    status, text = get("/metrics")
    assert status == 200
    assert f"calstream_readings_stored_total {float(publisher.readings_acked)}" in text
    assert "calstream_store_write_seconds_count" in text
    assert 'calstream_instruments{status="OK"}' in text
    pipeline.stop()
    assert get("/healthz")[0] == 503
    server.stop()
    publisher.close()
    subscriber.stop()
    store.close()
