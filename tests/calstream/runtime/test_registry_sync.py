"""Registry changes reach the running pipeline: a real mosquitto, the embedded store, no restart.

An instrument unknown to the running pipeline is registered through the registry operations
while readings flow: refused before (``unknown_instrument``), accepted after; its certificate
corrects from its calibration date on (the corrected values say so, by value); once retired, its
readings are refused with ``instrument_retired``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from service_process import RawPublisher, wait_for

from calstream.runtime.registry_sync import RegistrySync
from calstream.servers.mosquitto import LocalMosquitto
from calstream.settings import Settings
from calstream.wiring import pipeline_for, subscriber_for
from metrology.fleet import Fleet
from metrology.tenancy import Principal
from metrology.timebase import iso
from metrology.wire import readings_topic
from storage.sqlite_store import SqliteStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

NOW = time.time()
CERTIFIED_AT = NOW - 6 * 3600.0
NEW = "acme-north-PT-900"


def message(spec_site: tuple[str, str, str], readings: list[tuple[float, float, int]]) -> bytes:
    tenant, site, gateway = spec_site
    return json.dumps(
        {
            "v": 1,
            "tenant": tenant,
            "site": site,
            "gateway": gateway,
            "readings": [
                {"instrument": NEW, "ts": iso(ts), "value": value, "unit": "bar", "seq": seq}
                for ts, value, seq in readings
            ],
        }
    ).encode()


def stored(db: Path) -> dict[int, float]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT seq, corrected FROM readings WHERE instrument_id = ?", (NEW,))
        return {int(seq): float(corrected) for seq, corrected in rows}


def dead(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT reason, sum(count) FROM dead_letters WHERE instrument_id = ? GROUP BY reason",
            (NEW,),
        )
        return {reason: int(n) for reason, n in rows}


def test_an_instrument_registered_while_readings_flow_is_taken_without_a_restart(
    mosquitto: LocalMosquitto, example_fleet: Fleet, tmp_path: Path
) -> None:
    place = next((s.tenant, s.site, s.gateway) for s in example_fleet.instruments.values())
    db = tmp_path / "store.sqlite"
    store = SqliteStore(db)
    store.register_fleet(example_fleet)
    settings = Settings()
    subscriber = subscriber_for(settings, mosquitto.host, mosquitto.port, "registry-sync-test")
    pipeline = pipeline_for(example_fleet, settings, store, subscriber)
    pipeline.registry = RegistrySync(store, pipeline.admission, pipeline.processor, every_s=0.0)
    pipeline.registry.poll(force=True)
    pipeline.start()
    publisher = RawPublisher(mosquitto, "registry-sync-gateway")
    topic = readings_topic(*place)
    local = Principal.local()
    try:
        publisher.publish(topic, message(place, [(NOW - 7 * 3600.0, 5.0, 1)]))
        publisher.flush()
        assert wait_for(lambda: dead(db) == {"unknown_instrument": 1}, 30), dead(db)

        store.operations.register_instrument(
            local,
            {
                "tenant": place[0],
                "site": place[1],
                "gateway": place[2],
                "id": NEW,
                "measurand": "pressure",
                "unit": "bar",
                "range": {"low": 0, "high": 16},
                "tolerance": {"mpe": 0.05},
                "period_s": 600,
                "reference": {"kind": "none"},
            },
        )
        store.operations.record_calibration(
            local,
            {
                "instrument_id": NEW,
                "certificate": "CAL-PT-900-1",
                "date": iso(CERTIFIED_AT),
                "correction": {"offset": 0.25, "gain": 1.0},
                "expanded_uncertainty": 0.02,
                "interval_days": 365,
            },
        )
        # One reading before the certificate's date, two after it.
        publisher.publish(
            topic,
            message(
                place,
                [
                    (CERTIFIED_AT - 3600.0, 5.0, 2),
                    (CERTIFIED_AT + 3600.0, 5.0, 3),
                    (CERTIFIED_AT + 7200.0, 6.0, 4),
                ],
            ),
        )
        publisher.flush()
        assert wait_for(lambda: len(stored(db)) == 3, 30), (stored(db), dead(db))
        corrected = stored(db)
        assert corrected[2] == pytest.approx(5.0)  # no certificate in force yet: as indicated
        assert corrected[3] == pytest.approx(5.25)
        assert corrected[4] == pytest.approx(6.25)

        store.operations.retire_instrument(
            local, {"instrument_id": NEW, "reason": "replaced by PT-901"}
        )
        publisher.publish(topic, message(place, [(CERTIFIED_AT + 10_800.0, 5.0, 5)]))
        publisher.flush()
        assert wait_for(lambda: dead(db).get("instrument_retired") == 1, 30), dead(db)
        assert dead(db) == {"unknown_instrument": 1, "instrument_retired": 1}
        assert len(stored(db)) == 3
        counters = pipeline.counters
        assert counters.received == counters.accepted + counters.rejected
        assert pipeline.registry.applied >= 3
    finally:
        publisher.close()
        pipeline.stop()
        subscriber.stop()
        store.close()
