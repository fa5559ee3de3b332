"""A message that kills the pipeline process cannot stop ingestion: `calstream run` for real.

The fault is injected (``CALSTREAM_FAULT_CRASH_ON``: the process kills itself with SIGKILL when
it takes a message whose payload holds the marker, after recording it in hand), and the service
is restarted on the same durable session after each death, as a supervisor would.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from service_process import RawPublisher, Run, dead_letters, stored, wait_for

from calstream.servers.mosquitto import LocalMosquitto
from edge_sim.gateway import GatewayPublisher
from edge_sim.simulator import FleetSimulator
from metrology.fleet import Fleet
from metrology.timebase import SECONDS_PER_DAY
from metrology.wire import readings_topic

MARKER = "kills-the-pipeline-7f3a"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def poison_payload() -> bytes:
    return (
        b'{"v":1,"tenant":"acme","site":"plant-north","gateway":"gw-north-1","readings":[],'
        b'"note":"' + MARKER.encode() + b'"}'
    )


def test_a_message_that_kills_the_process_is_filed_as_poison_and_nothing_else_is_lost(
    mosquitto: LocalMosquitto, example_fleet: Fleet, tmp_path: Path
) -> None:
    end = example_fleet.as_of or 0.0
    batches = list(FleetSimulator(example_fleet, seed=3, start=end - 10 * SECONDS_PER_DAY, end=end))
    half = len(batches) // 2
    run = Run(mosquitto, tmp_path, env={"CALSTREAM_FAULT_CRASH_ON": MARKER})
    db = run.db
    run.start()

    gateways = GatewayPublisher(client_id="gateways-poison-test")
    gateways.connect(mosquitto.host, mosquitto.port)
    raw = RawPublisher(mosquitto, "poison-publisher")
    try:
        gateways.publish_all(batches[:half])
        assert gateways.flush(30)
        raw.publish(readings_topic("acme", "plant-north", "gw-north-1"), poison_payload())
        raw.flush()
        gateways.publish_all(batches[half:])
        assert gateways.flush(30)
        total = gateways.readings_acked
    finally:
        raw.close()
        gateways.close()

    crashes = 0
    for _ in range(4):  # a supervisor restarting the service after each death
        process = run.process
        assert process is not None
        assert wait_for(
            lambda p=process: p.poll() is not None or "poison_message" in dead_letters(db), 60
        )
        if process.poll() is None:
            break  # past the message: filed as poison
        assert process.returncode == -signal.SIGKILL, run.log.read_text()[-3000:]
        crashes += 1
        run.start()
    assert crashes == 2, f"the process died {crashes} times"
    log = run.log.read_text()
    assert "died with" in log and "messages in hand" in log
    assert wait_for(lambda: stored(db) == total, 60), (stored(db), total)
    assert wait_for(lambda: dead_letters(db).get("poison_message") == 1, 30), dead_letters(db)
    time.sleep(1.0)  # nothing more arrives: no duplicate, no loss, no third death
    assert stored(db) == total
    assert dead_letters(db) == {"poison_message": 1}
    assert run.process is not None and run.process.poll() is None

    # The same message again (a gateway resending it): filed at once, no third death.
    raw = RawPublisher(mosquitto, "poison-publisher-again")
    try:
        raw.publish(readings_topic("acme", "plant-north", "gw-north-1"), poison_payload())
        raw.flush()
    finally:
        raw.close()
    assert wait_for(lambda: dead_letters(db).get("poison_message") == 2, 30), dead_letters(db)
    assert run.process.poll() is None
    assert run.signal(signal.SIGTERM) == 0
