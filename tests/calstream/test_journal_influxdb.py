"""The journal with the production store: InfluxDB (Debian's influxd 1.x) stopped mid-stream.

The same mechanism as a 60 s outage, in 4 s: the sink's retry budget (``retry_s=1`` in the
store URL) runs out, batches go to the journal and are acknowledged, and once influxd is back
the journal is replayed. The count is read back from the server: every reading once.
"""

from __future__ import annotations

import time
from pathlib import Path

from service_process import wait_for

from calstream.journal import Journal
from calstream.local_influxdb import LocalInfluxDB
from calstream.local_mosquitto import LocalMosquitto
from calstream.settings import Settings
from calstream.wiring import pipeline_for, subscriber_for
from edge_sim.gateway import GatewayPublisher
from edge_sim.simulator import FleetSimulator
from metrology.fleet import Fleet
from metrology.timebase import SECONDS_PER_DAY
from storage.select import open_store


def test_influxdb_stopped_mid_stream_spills_to_the_journal_and_loses_nothing(
    mosquitto: LocalMosquitto, influxdb: LocalInfluxDB, example_fleet: Fleet, tmp_path: Path
) -> None:
    fleet = example_fleet
    end = fleet.as_of or 0.0
    batches = list(FleetSimulator(fleet, seed=12, start=end - 6 * SECONDS_PER_DAY, end=end))
    total = sum(len(b.readings) for b in batches)
    store = open_store(
        f"{influxdb.store_url}?retry_s=1&timeout_s=2",
        f"sqlite:///{tmp_path / 'registry.sqlite'}",
    )
    store.register_fleet(fleet)
    journal = Journal(tmp_path / "journal", max_bytes=1 << 30)
    subscriber = subscriber_for(Settings(), mosquitto.host, mosquitto.port, "journal-influxdb")
    pipeline = pipeline_for(
        fleet, Settings(), store, subscriber, clock=lambda: end, journal=journal,  # type: ignore[arg-type]
        max_messages_per_batch=50,
    )  # fmt: skip
    pipeline.start(write_behind=True)
    publisher = GatewayPublisher(client_id="gateways-journal-influxdb")
    publisher.connect(mosquitto.host, mosquitto.port)
    third = len(batches) // 3
    publisher.publish_all(batches[:third])
    assert publisher.flush(30)
    assert wait_for(lambda: store.reading_count() == publisher.readings_acked, 30)

    influxdb.stop()
    outage_started = time.monotonic()
    publisher.publish_all(batches[third:])
    assert publisher.flush(30)
    # Taken and acknowledged while influxd is down: in the journal.
    assert wait_for(lambda: subscriber.messages_acked == publisher.messages_acked, 30)
    in_journal = journal.depth
    assert in_journal.readings > 0
    assert pipeline.counters.journaled > 0
    time.sleep(max(0.0, 4.0 - (time.monotonic() - outage_started)))
    influxdb.start()

    assert wait_for(lambda: journal.empty, 60), journal.depth
    assert wait_for(lambda: store.reading_count() == total, 30), (store.reading_count(), total)
    pipeline.stop()
    publisher.close()
    subscriber.stop()
    assert pipeline.error is None
    assert publisher.readings_acked == total
    assert store.reading_count() == total  # read back from influxd: every reading once
    assert journal.depth.batches == journal.depth.readings == journal.depth.bytes == 0
    journal.close()
    store.close()
