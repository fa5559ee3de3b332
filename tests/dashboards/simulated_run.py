"""A short simulated run of the example fleet, stored for the dashboards' queries to read.

The real pipeline pieces, without MQTT: ``FleetSimulator`` (gateway batches) -> ``Admission``
(the registry check ingest makes; refused readings become dead letters as the pipeline writes
them) -> ``FleetProcessor`` (the pipeline's ``step``) -> ``SqliteStore.write``. Twenty simulated
days of the 60-instrument example fleet give drifting, out-of-tolerance, due and overdue
instruments; one gateway goes silent for the last two days (OFFLINE); a few readings of an
unknown instrument are refused (dead letters). The batches are kept so that other stores
(InfluxDB) can be written with exactly the same data.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path

from grafana_macros import TimeRange

from edge_sim.simulator import FleetSimulator
from ingest.admission import Admission
from metrology.batch import OutputBatch
from metrology.fleet import Fleet
from metrology.timebase import SECONDS_PER_DAY
from metrology.wire import DeadLetter, DecodedMessage, readings_topic
from stream_processors.policy import ProcessingPolicy
from stream_processors.runner import FleetProcessor

SIM_DAYS = 20.0
SEED = 1
SILENT_GATEWAY = ("nordfab", "gw-02")
"""This gateway publishes nothing in the last two simulated days: its instruments go OFFLINE."""
SILENT_FOR_S = 2 * SECONDS_PER_DAY
UNKNOWN_INSTRUMENT = "acme-north-XX-999"
"""Every 40th message also carries a reading of this unregistered instrument (dead letter)."""


@dataclass(frozen=True)
class SimulatedRun:
    fleet: Fleet
    batches: list[OutputBatch]
    start: float
    end: float
    db: Path

    @property
    def time_range(self) -> TimeRange:
        return TimeRange.of_seconds(self.start, self.end)

    def connect(self) -> sqlite3.Connection:
        """Read-only, as Grafana's SQLite datasource opens it."""
        return sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)


def simulate(fleet: Fleet) -> tuple[list[OutputBatch], float, float]:
    end = fleet.as_of
    assert end is not None
    start = end - SIM_DAYS * SECONDS_PER_DAY
    simulator = FleetSimulator(fleet, seed=SEED, start=start, end=end)
    admission = Admission(fleet.instruments)
    policy = replace(ProcessingPolicy(), offline_grace_s=2 * simulator.publish_interval_s)
    processor = FleetProcessor(fleet, policy)
    batches: list[OutputBatch] = []
    for index, (tenant, site, gateway, readings) in enumerate(simulator):
        if (tenant, gateway) == SILENT_GATEWAY and readings[-1].ts > end - SILENT_FOR_S:
            continue
        topic = readings_topic(tenant, site, gateway)
        if index % 40 == 0:
            stray = readings[0]._replace(instrument_id=UNKNOWN_INSTRUMENT, seq=index)
            readings = [*readings, stray]
        received_at = max(reading.ts for reading in readings)
        admitted, rejections = admission.admit(DecodedMessage(topic, readings, []), received_at)
        output = processor.process(admitted)
        assert not output.failed
        changes = output.changes + processor.sweep()
        touched = output.touched | {change.instrument_id for change in changes}
        dead_letters = [
            DeadLetter(
                received_at=received_at,
                topic=topic,
                reason=rejection.reason,
                detail=rejection.detail,
                excerpt="{}",
                count=rejection.count,
                tenant=tenant,
                instrument_id=rejection.instrument_id,
                seq=rejection.seq,
            )
            for rejection in rejections
        ]
        batches.append(
            OutputBatch(output.assessed, processor.snapshots(touched), changes, dead_letters)
        )
    changes = processor.sweep(end)
    batches.append(OutputBatch(changes=changes, snapshots=processor.snapshots(processor.states)))
    return batches, start, end
