"""The sink against a real influxd 1.x: simulated pipeline batches in, exact counts back out
through InfluxQL; re-delivery overwrites; counts by status per site; restarts; credentials."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from calstream.servers.influxdb import LocalInfluxDB
from edge_sim.simulator import FleetSimulator
from ingest.admission import Admission
from metrology.assessment import HealthSnapshot
from metrology.batch import OutputBatch
from metrology.fleet import Fleet
from metrology.health import Status
from metrology.timebase import SECONDS_PER_DAY
from metrology.wire import DeadLetter, DecodedMessage, RejectReason, readings_topic
from storage.errors import StorageError
from storage.influx import InfluxSink
from storage.influx.lineprotocol import nanoseconds
from storage.influx.schema import FLEET_STATUS_FIELDS, SEVERITY_OF
from stream_processors.runner import FleetProcessor


@dataclass
class Simulated:
    batches: list[OutputBatch]

    @property
    def readings(self) -> int:
        return sum(len(b.readings) for b in self.batches)

    def snapshots(self) -> list[HealthSnapshot]:
        return [s for b in self.batches for s in b.snapshots]

    def points(self) -> int:
        return sum(len(b) for b in self.batches)

    def latest_counts(self) -> dict[tuple[str, str], Counter[Status]]:
        latest: dict[str, HealthSnapshot] = {}
        for s in self.snapshots():
            if (
                s.instrument_id not in latest
                or s.evaluated_at >= latest[s.instrument_id].evaluated_at
            ):
                latest[s.instrument_id] = s
        counts: dict[tuple[str, str], Counter[Status]] = {}
        for s in latest.values():
            counts.setdefault((s.tenant, s.site), Counter())[s.status] += 1
        return counts


def simulate(fleet: Fleet, days: float = 3.0, seed: int = 7) -> Simulated:
    """The pipeline's batches: one per gateway message, processed by the fleet processor; the
    first three messages also carry two rejections each with the same reason and time."""
    end = fleet.as_of or 0.0
    simulator = FleetSimulator(fleet, seed, end - days * SECONDS_PER_DAY, end)
    admission = Admission(fleet.instruments)
    processor = FleetProcessor(fleet)
    batches = []
    for n, (tenant, site, gateway, readings) in enumerate(simulator):
        topic = readings_topic(tenant, site, gateway)
        admitted, rejections = admission.admit(DecodedMessage(topic, readings, []), readings[-1].ts)
        assert not rejections
        output = processor.process(admitted)
        assert not output.failed
        dead = [
            DeadLetter(readings[-1].ts, topic, RejectReason.OUT_OF_RANGE, f"reading {k} of {n}",
                       '{"v": 1}', count=k + 1, tenant=tenant, instrument_id="x", seq=k)
            for k in range(2 if n < 3 else 0)
        ]  # fmt: skip
        batches.append(
            OutputBatch(
                readings=output.assessed,
                snapshots=processor.snapshots(output.touched),
                changes=output.changes,
                dead_letters=dead,
            )
        )
    batches.append(
        OutputBatch(changes=processor.sweep(), snapshots=processor.snapshots(processor.contexts))
    )
    return Simulated(batches)


_SIMULATED: dict[str, Simulated] = {}


@pytest.fixture
def simulated(fleet: Fleet) -> Simulated:
    if "fleet" not in _SIMULATED:
        _SIMULATED["fleet"] = simulate(fleet)
    return _SIMULATED["fleet"]


@pytest.fixture
def sink(influxdb: LocalInfluxDB, fleet: Fleet) -> Iterator[InfluxSink]:
    with InfluxSink.from_url(influxdb.store_url, fleet, retry_s=5) as opened:
        yield opened


def scalar(sink: InfluxSink, influxql: str) -> int:
    series = sink.query(influxql)
    return 0 if not series else int(series[0]["values"][0][1])


def write_all(sink: InfluxSink, simulated: Simulated) -> int:
    return sum(sink.write_series(b) for b in simulated.batches)


def test_simulated_batches_are_stored_with_exact_counts(
    sink: InfluxSink, simulated: Simulated
) -> None:
    written = write_all(sink, simulated)
    readings = [r for b in simulated.batches for r, _ in b.readings]
    identities = {(r.instrument_id, nanoseconds(r.ts)) for r in readings}
    snapshots = {(s.instrument_id, nanoseconds(s.evaluated_at)) for s in simulated.snapshots()}
    changes = {(c.instrument_id, c.ts, c.status) for b in simulated.batches for c in b.changes}
    dead = [d for b in simulated.batches for d in b.dead_letters]
    assert len(identities) == len(readings) > 1000
    assert len(changes) > 0 and len(dead) == 6

    assert sink.reading_count() == len(readings)
    assert scalar(sink, 'SELECT count("severity") FROM "health"') == len(snapshots)
    assert scalar(sink, 'SELECT count("severity") FROM "alert"') == len(changes)
    # Two rejections of one message share reason, tenant and time: both are kept.
    assert scalar(sink, 'SELECT count("detail") FROM "dead_letter"') == 6
    assert scalar(sink, 'SELECT sum("count") FROM "dead_letter"') == sum(d.count for d in dead)
    fleet_status_points = scalar(sink, 'SELECT count("total") FROM "fleet_status"')
    assert written == simulated.points() + fleet_status_points


def test_rewriting_every_batch_overwrites_instead_of_adding(
    sink: InfluxSink, simulated: Simulated
) -> None:
    write_all(sink, simulated)
    counts = [
        sink.reading_count(),
        scalar(sink, 'SELECT count("severity") FROM "health"'),
        scalar(sink, 'SELECT count("severity") FROM "alert"'),
        scalar(sink, 'SELECT count("detail") FROM "dead_letter"'),
    ]
    write_all(sink, simulated)
    assert [
        sink.reading_count(),
        scalar(sink, 'SELECT count("severity") FROM "health"'),
        scalar(sink, 'SELECT count("severity") FROM "alert"'),
        scalar(sink, 'SELECT count("detail") FROM "dead_letter"'),
    ] == counts
    assert counts[0] == simulated.readings


def test_reading_fields_and_tags_are_the_batch_values(
    sink: InfluxSink, simulated: Simulated, fleet: Fleet
) -> None:
    write_all(sink, simulated)
    reading, assessment = next(
        (r, a) for b in simulated.batches for r, a in b.readings if a.residual is not None
    )
    series = sink.query(
        f'SELECT * FROM "reading" WHERE "instrument" = \'{reading.instrument_id}\' '
        f"AND time = {nanoseconds(reading.ts)}"
    )
    row = dict(zip(series[0]["columns"], series[0]["values"][0], strict=True))
    expected = {
        "time": nanoseconds(reading.ts),
        "tenant": reading.tenant,
        "site": reading.site,
        "instrument": reading.instrument_id,
        "measurand": fleet.instruments[reading.instrument_id].measurand,
        "value": reading.value,
        "corrected": assessment.corrected,
        "seq": reading.seq,
        "status": assessment.status.value,
        "certificate": assessment.certificate_id,
        "reference": assessment.reference,
        "residual": assessment.residual,
        "u_residual": assessment.u_residual,
        "ewma": assessment.ewma,
        "cusum_high": assessment.cusum_high,
        "cusum_low": assessment.cusum_low,
        "drift_rate": assessment.drift_rate,
    }
    # A field that is None in the batch is not written (no column, or null).
    assert {k: v for k, v in row.items() if v is not None} == {
        k: v for k, v in expected.items() if v is not None
    }
    assert expected["residual"] is not None and expected["certificate"] is not None
    measurands = sink.query('SHOW TAG VALUES FROM "reading" WITH KEY = "measurand"')
    assert {v[1] for v in measurands[0]["values"]} == {"temperature", "pressure"}


def fleet_status(sink: InfluxSink) -> dict[tuple[str, str], dict[str, int]]:
    fields = [*FLEET_STATUS_FIELDS.values(), "total"]
    selected = ", ".join(f'last("{f}") AS "{f}"' for f in fields)
    series = sink.query(f'SELECT {selected} FROM "fleet_status" GROUP BY "tenant", "site"')
    return {
        (s["tags"]["tenant"], s["tags"]["site"]): dict(zip(fields, s["values"][0][1:], strict=True))
        for s in series
    }


def expected_status_counts(simulated: Simulated) -> dict[tuple[str, str], dict[str, int]]:
    return {
        place: {
            **{f: counts[status] for status, f in FLEET_STATUS_FIELDS.items()},
            "total": sum(counts.values()),
        }
        for place, counts in simulated.latest_counts().items()
    }


def test_counts_by_status_per_tenant_and_site_are_the_latest_statuses(
    sink: InfluxSink, simulated: Simulated
) -> None:
    write_all(sink, simulated)
    expected = expected_status_counts(simulated)
    assert set(expected) == {("acme", "north"), ("acme", "south"), ("globex", "main")}
    assert fleet_status(sink) == expected
    # The health series says the same per instrument.
    series = sink.query('SELECT last("severity") FROM "health" GROUP BY "instrument"')
    latest = {s["tags"]["instrument"]: s["values"][0][1] for s in series}
    final = {s.instrument_id: SEVERITY_OF[s.status] for s in simulated.batches[-1].snapshots}
    assert latest == final


def test_a_restarted_sink_counts_from_the_statuses_on_the_server(
    influxdb: LocalInfluxDB, fleet: Fleet, simulated: Simulated, make_snapshot
) -> None:
    with InfluxSink.from_url(influxdb.store_url, fleet) as first:
        write_all(first, simulated)
    before = expected_status_counts(simulated)
    late = max(s.evaluated_at for s in simulated.snapshots()) + 60.0
    with InfluxSink.from_url(influxdb.store_url, fleet) as restarted:
        snapshot = make_snapshot("acme-n-TT-001", Status.OUT_OF_TOLERANCE, evaluated_at=late)
        restarted.write_series(OutputBatch(snapshots=[snapshot]))
        after = fleet_status(restarted)
    old = next(s for s in simulated.batches[-1].snapshots if s.instrument_id == "acme-n-TT-001")
    north = dict(before[("acme", "north")])
    north[FLEET_STATUS_FIELDS[old.status]] -= 1
    north["out_of_tolerance"] += 1
    # All three instruments of the site are counted, not only the one of the batch.
    assert after[("acme", "north")] == north
    assert north["total"] == 3


def test_seeded_counts_come_from_the_registry_snapshots(
    sink: InfluxSink, make_snapshot, t0: float
) -> None:
    sink.seed_statuses(
        [
            make_snapshot("globex-TT-001", Status.OK, evaluated_at=t0),
            make_snapshot("globex-TT-002", Status.DRIFTING, evaluated_at=t0),
        ]
    )
    sink.write_series(
        OutputBatch(snapshots=[make_snapshot("globex-TT-001", Status.AT_RISK, t0 + 1)])
    )
    counts = fleet_status(sink)[("globex", "main")]
    assert (counts["at_risk"], counts["drifting"], counts["ok"], counts["total"]) == (1, 1, 0, 2)


def test_a_missing_database_is_created(influxdb: LocalInfluxDB, make_reading) -> None:
    url = influxdb.store_url.replace(f"/{influxdb.database}", "/created_by_sink")
    with InfluxSink.from_url(url) as sink:
        assert sink.write_series(OutputBatch(readings=[make_reading(seq=s) for s in range(3)])) == 3
        assert sink.reading_count() == 3


def test_wrong_credentials_fail_at_once_with_what_to_check(tmp_path: Path, make_reading) -> None:
    with LocalInfluxDB(tmp_path / "auth", username="admin", password="right") as server:
        wrong = server.store_url.replace(":right@", ":wrong@")
        with (
            InfluxSink.from_url(wrong, retry_s=60) as sink,
            pytest.raises(StorageError, match=r"HTTP 401.*check the user and password"),
        ):
            sink.write_series(OutputBatch(readings=[make_reading()]))
        with InfluxSink.from_url(server.store_url) as sink:
            assert sink.write_series(OutputBatch(readings=[make_reading()])) == 1
            assert sink.reading_count() == 1


def test_same_time_different_seq_is_one_point(sink: InfluxSink, make_reading, t0: float) -> None:
    """The documented consequence of (instrument, time) identity: the later write wins."""
    first = make_reading("acme-n-TT-001", seq=1, ts=t0, value=20.0)
    second = make_reading("acme-n-TT-001", seq=2, ts=t0, value=21.0, reference=False)
    sink.write_series(OutputBatch(readings=[first, second]))
    assert sink.reading_count() == 1
    series = sink.query('SELECT "seq", "value", "residual" FROM "reading"')
    assert series[0]["values"] == [[nanoseconds(t0), 2, 21.0, first[1].residual]]


def test_a_named_retention_policy_is_written_and_read(
    influxdb: LocalInfluxDB, make_reading
) -> None:
    influxdb.query(f'CREATE RETENTION POLICY "week" ON "{influxdb.database}" DURATION 100w '
                   "REPLICATION 1")  # fmt: skip
    with InfluxSink.from_url(f"{influxdb.store_url}?rp=week") as sink:
        assert sink.write_series(OutputBatch(readings=[make_reading(seq=s) for s in range(4)])) == 4
        assert sink.reading_count() == 4
    # Nothing went to the default retention policy.
    with InfluxSink.from_url(influxdb.store_url) as default:
        assert default.reading_count() == 0
