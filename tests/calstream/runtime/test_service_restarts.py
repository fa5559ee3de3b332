"""`calstream run` as a real process against a real mosquitto: stop, kill -9, restart, count."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_process import Run, stored, wait_for

from calstream.servers.mosquitto import LocalMosquitto
from edge_sim.gateway import GatewayPublisher
from edge_sim.simulator import FleetSimulator
from metrology.fleet import Fleet
from metrology.timebase import SECONDS_PER_DAY


@pytest.fixture
def batches(example_fleet: Fleet) -> list:
    end = example_fleet.as_of or 0.0
    simulator = FleetSimulator(example_fleet, seed=5, start=end - 40 * SECONDS_PER_DAY, end=end)
    return list(simulator)


@pytest.fixture
def publisher(mosquitto: LocalMosquitto) -> Iterator[GatewayPublisher]:
    gateways = GatewayPublisher(client_id="gateways-restart-test")
    gateways.connect(mosquitto.host, mosquitto.port)
    yield gateways
    gateways.close()


def test_sigterm_stops_cleanly_and_a_restart_gets_what_came_meanwhile(
    mosquitto: LocalMosquitto, publisher: GatewayPublisher, batches: list, tmp_path: Path
) -> None:
    run = Run(mosquitto, tmp_path)
    db = Path(run.env["CALSTREAM_DB"])
    run.start()
    half = len(batches) // 2
    publisher.publish_all(batches[:half])
    assert publisher.flush(30)
    first = publisher.readings_acked
    assert wait_for(lambda: stored(db) == first)
    assert run.signal(signal.SIGTERM) == 0
    assert "finishing the batch in hand" in run.log.read_text()

    publisher.publish_all(batches[half:])  # nobody is subscribed: the broker keeps them
    assert publisher.flush(30)
    total = publisher.readings_acked
    run.start()
    assert wait_for(lambda: stored(db) == total)
    time.sleep(1.0)  # nothing more arrives: no duplicate, no loss
    assert stored(db) == total
    assert run.signal(signal.SIGINT) == 0


def test_kill_9_mid_stream_loses_and_duplicates_nothing(
    mosquitto: LocalMosquitto, publisher: GatewayPublisher, batches: list, tmp_path: Path
) -> None:
    run = Run(mosquitto, tmp_path)
    db = Path(run.env["CALSTREAM_DB"])
    run.start()
    publisher.publish_all(batches)
    assert publisher.flush(30)
    total = publisher.readings_acked
    assert wait_for(lambda: stored(db) > total // 10, 30)
    assert run.signal(signal.SIGKILL) == -signal.SIGKILL
    at_kill = stored(db)
    assert at_kill < total, "killed too late to prove anything: publish more"
    run.start()
    assert wait_for(lambda: stored(db) == total)
    time.sleep(1.0)
    assert stored(db) == total
    assert run.signal(signal.SIGTERM) == 0


def test_broker_restart_with_the_deploy_config_loses_nothing(
    mosquitto: LocalMosquitto, batches: list, tmp_path: Path
) -> None:
    """mosquitto restarted with messages queued for the pipeline: its persistence keeps them.

    A graceful restart (SIGTERM) saves everything. After ``kill -9`` mosquitto can lose what
    it acknowledged since its last autosave (seen here with a save after every change: one
    message of seven readings): see the deploy configuration.
    """
    run = Run(mosquitto, tmp_path)
    db = Path(run.env["CALSTREAM_DB"])
    run.start()
    gateways = GatewayPublisher(client_id="gateways-broker-restart", max_inflight=200)
    gateways.connect(mosquitto.host, mosquitto.port)
    third = len(batches) // 3
    gateways.publish_all(batches[:third])
    assert gateways.flush(30)
    assert wait_for(lambda: stored(db) == gateways.readings_acked)
    run.signal(signal.SIGTERM)  # the pipeline is away while the broker queues for it...
    gateways.publish_all(batches[third : 2 * third])
    assert gateways.flush(30)
    mosquitto.stop()  # ...and the broker restarts with those messages queued
    mosquitto.start()
    run.start()
    # paho reconnects by itself; what it had in flight is re-sent after reconnecting
    gateways.publish_all(batches[2 * third :], timeout=None)
    assert gateways.flush(60)
    total = gateways.readings_acked
    assert total == sum(len(b.readings) for b in batches)
    assert wait_for(lambda: stored(db) == total, 60), (stored(db), total)
    time.sleep(1.0)
    assert stored(db) == total
    assert run.signal(signal.SIGTERM) == 0
    gateways.close()
