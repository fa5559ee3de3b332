"""The journal with the production store (InfluxDB series, PostgreSQL registry): either stopped.

The same mechanism as a 60 s outage, in 4 s. With Debian's influxd 1.x stopped, the sink's retry
budget (``retry_s=1`` in the store URL) runs out; with PostgreSQL stopped, the registry's write
fails after the series were written. Either way batches go to the journal and are acknowledged,
and once the server is back the journal is replayed. The counts are read back from the servers:
every reading once in InfluxDB, every status change once in PostgreSQL.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from service_process import wait_for

from calstream.runtime.journal import Journal
from calstream.servers.influxdb import LocalInfluxDB
from calstream.servers.mosquitto import LocalMosquitto
from calstream.settings import Settings
from calstream.wiring import pipeline_for, subscriber_for
from edge_sim.gateway import GatewayPublisher
from edge_sim.simulator import FleetSimulator
from metrology.fleet import Fleet
from metrology.timebase import SECONDS_PER_DAY
from storage.select import open_store

if TYPE_CHECKING:
    from conftest import PostgresDatabase


@pytest.mark.parametrize("stopped", ["influxdb", "postgresql"])
def test_a_store_server_stopped_mid_stream_spills_to_the_journal_and_loses_nothing(
    stopped: str,
    mosquitto: LocalMosquitto,
    influxdb: LocalInfluxDB,
    postgres: PostgresDatabase,
    example_fleet: Fleet,
    tmp_path: Path,
) -> None:
    fleet = example_fleet
    end = fleet.as_of or 0.0
    batches = list(FleetSimulator(fleet, seed=12, start=end - 6 * SECONDS_PER_DAY, end=end))
    total = sum(len(b.readings) for b in batches)
    store = open_store(f"{influxdb.store_url}?retry_s=1&timeout_s=2", postgres.url)
    server = influxdb if stopped == "influxdb" else postgres.server
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

    server.stop()
    outage_started = time.monotonic()
    publisher.publish_all(batches[third:])
    assert publisher.flush(30)
    # Taken and acknowledged while influxd is down: in the journal.
    assert wait_for(lambda: subscriber.messages_acked == publisher.messages_acked, 30)
    in_journal = journal.depth
    assert in_journal.readings > 0
    assert pipeline.counters.journaled > 0
    time.sleep(max(0.0, 4.0 - (time.monotonic() - outage_started)))
    server.start()

    assert wait_for(lambda: journal.empty, 60), journal.depth
    assert wait_for(lambda: store.reading_count() == total, 30), (store.reading_count(), total)
    pipeline.stop()
    publisher.close()
    subscriber.stop()
    assert pipeline.error is None
    assert publisher.readings_acked == total
    assert store.reading_count() == total  # read back from influxd: every reading once
    assert store.alert_count() == pipeline.counters.alerts  # from PostgreSQL: each change once
    assert journal.depth.batches == journal.depth.readings == journal.depth.bytes == 0
    journal.close()
    store.close()
