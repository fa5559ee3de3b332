"""One contract for every store and registry, on real databases and servers.

Targets: the embedded ``SqliteStore``; ``SqlRegistry`` on SQLite and on PostgreSQL (the registry
part of the contract: registration, revisions, curves, latest states, alerts, dead letters,
queries); ``CompositeStore`` of an ``InfluxSink`` and a ``SqlRegistry`` against InfluxDB 1.x
and VictoriaMetrics (InfluxDB v2 write API). The same assertions run against each, with the
expected numbers derived from the batches themselves: real batches of a simulated fleet
processed by the fleet processor, as the pipeline builds them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from edge_sim.simulator import FleetSimulator
from ingest.admission import Admission, AdmissionPolicy
from metrology.assessment import HealthSnapshot, StatusChange
from metrology.audit import Amendment
from metrology.batch import OutputBatch
from metrology.calibration import CalibrationHistory
from metrology.curves import CurveCorrection
from metrology.fleet import Fleet
from metrology.health import SEVERITY, Status
from metrology.tenancy import Principal, Role
from metrology.timebase import SECONDS_PER_DAY
from metrology.wire import DeadLetter, DecodedMessage, RejectReason, readings_topic
from storage.composite import CompositeStore
from storage.errors import StorageError, UnsupportedQuery
from storage.queries import NO_DATA, STATUS_KEYS
from storage.registry import SqlRegistry
from storage.sqlite_store import SqliteStore
from stream_processors.runner import FleetProcessor

TARGETS = [
    "sqlite-store",
    "registry-sqlite",
    "registry-postgres",
    "composite-influxdb-sqlite",
    "composite-victoriametrics-postgres",
]
STORES = [t for t in TARGETS if not t.startswith("registry-")]
"""Targets that also store readings (the full :class:`storage.contract.Store`)."""

Target = SqliteStore | SqlRegistry | CompositeStore


def _series_server(request: pytest.FixtureRequest, name: str) -> Any:
    try:
        return request.getfixturevalue(name)
    except pytest.FixtureLookupError:
        pytest.fail(f"the {name!r} fixture (a real server with .store_url) is not defined")


def _open(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    if kind == "sqlite-store":
        return SqliteStore(tmp_path / "store" / "calstream.sqlite")
    if kind == "registry-sqlite":
        return SqlRegistry(f"sqlite:///{tmp_path / 'registry' / 'registry.sqlite'}")
    if kind == "registry-postgres":
        return SqlRegistry(request.getfixturevalue("postgres").url)
    from storage.influx import InfluxSink

    if kind == "composite-influxdb-sqlite":
        server = _series_server(request, "influxdb")
        registry = SqlRegistry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    else:
        server = _series_server(request, "victoria_metrics")
        registry = SqlRegistry(request.getfixturevalue("postgres").url)
    return CompositeStore(InfluxSink.from_url(server.store_url), registry)


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    opened = _open(request.param, request, tmp_path)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(params=STORES)
def full_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqliteStore]:
    opened = _open(request.param, request, tmp_path)
    try:
        yield opened  # type: ignore[misc]
    finally:
        opened.close()


def write(target: Target, batch: OutputBatch) -> tuple[int, int]:
    """(status changes, dead letters) newly stored by writing ``batch``."""
    if isinstance(target, SqlRegistry):
        return target.write_events(batch)
    result = target.write(batch)
    return result.changes, result.dead_letters


# --- real batches ---


@dataclass
class Simulated:
    batches: list[OutputBatch]
    processor: FleetProcessor

    @property
    def readings(self) -> int:
        return len({(r.instrument_id, r.ts, r.seq) for b in self.batches for r, _ in b.readings})

    @property
    def changes(self) -> list[StatusChange]:
        return [c for b in self.batches for c in b.changes]

    def statuses(self, fleet: Fleet, tenant: str | None = None) -> dict[str, int]:
        counts = dict.fromkeys(STATUS_KEYS, 0)
        for instrument_id, spec in fleet.instruments.items():
            if tenant is not None and spec.tenant != tenant:
                continue
            status = self.processor.states[instrument_id].status
            counts[NO_DATA if status is None else status.value] += 1
        return counts


DEAD_LETTERS = [
    (RejectReason.MALFORMED_JSON, 1, "acme"),
    (RejectReason.MALFORMED_JSON, 3, "globex"),
    (RejectReason.UNKNOWN_INSTRUMENT, 2, "acme"),
    (RejectReason.NOT_FINITE, 1, "globex"),
]


def _dead_letter(n: int, reason: RejectReason, count: int, tenant: str, at: float) -> DeadLetter:
    return DeadLetter(
        received_at=at + n,
        topic=readings_topic(tenant, "main", "gw-01"),
        reason=reason,
        detail=f"{reason.value} number {n}",
        excerpt='{"v": 1, "readings": [',
        count=count,
        tenant=tenant,
    )


def simulate(fleet: Fleet, days: float = 4.0, seed: int = 5) -> Simulated:
    """The pipeline's batches for ``days`` of the fleet: one per gateway message, plus a sweep."""
    end = fleet.as_of or 0.0
    simulator = FleetSimulator(fleet, seed, end - days * SECONDS_PER_DAY, end)
    admission = Admission(fleet.instruments, AdmissionPolicy())
    processor = FleetProcessor(fleet)
    batches = []
    for n, (tenant, site, gateway, readings) in enumerate(simulator):
        message = DecodedMessage(readings_topic(tenant, site, gateway), readings, [])
        admitted, rejections = admission.admit(message, readings[-1].ts)
        assert not rejections
        output = processor.process(admitted)
        assert not output.failed
        batch = OutputBatch(
            readings=output.assessed,
            changes=output.changes,
            snapshots=processor.snapshots(output.touched),
        )
        if n < len(DEAD_LETTERS):
            reason, count, dead_tenant = DEAD_LETTERS[n]
            batch.dead_letters.append(_dead_letter(n, reason, count, dead_tenant, readings[0].ts))
        batches.append(batch)
    changes = processor.sweep()
    batches.append(OutputBatch(changes=changes, snapshots=processor.snapshots(processor.contexts)))
    return Simulated(batches, processor)


_SIMULATED: dict[str, Simulated] = {}


@pytest.fixture
def simulated(fleet: Fleet) -> Simulated:
    """Four simulated days of the storage test fleet (computed once per session)."""
    if "fleet" not in _SIMULATED:
        _SIMULATED["fleet"] = simulate(fleet)
    return _SIMULATED["fleet"]


# --- the contract ---


def test_simulated_batches_are_stored_exactly_once(
    target: Target, fleet: Fleet, simulated: Simulated
) -> None:
    target.register_fleet(fleet)
    changes = dead = 0
    for batch in simulated.batches:
        stored = write(target, batch)
        changes, dead = changes + stored[0], dead + stored[1]
    distinct_changes = {(c.instrument_id, c.ts, c.status) for c in simulated.changes}
    assert len(distinct_changes) == len(simulated.changes) > 0
    assert (changes, dead) == (len(simulated.changes), len(DEAD_LETTERS))
    # Re-delivery of every batch (a crash after the write, before the acknowledgement).
    for batch in simulated.batches:
        assert write(target, batch) == (0, 0)
    assert target.alert_count() == len(simulated.changes)
    assert target.counts_by_status() == simulated.statuses(fleet)
    assert sum(target.counts_by_status().values()) == len(fleet.instruments)
    assert target.dead_letters_by_reason() == {"malformed_json": 4, "not_finite": 1,
                                               "unknown_instrument": 2}  # fmt: skip
    assert target.dead_letter_count() == 7
    assert len(target.snapshots()) == sum(
        1 for s in simulated.processor.states.values() if s.status is not None
    )
    if not isinstance(target, SqlRegistry):
        assert target.reading_count() == simulated.readings > 1000


def test_readings_re_delivered_are_counted_once(
    full_store: SqliteStore, fleet: Fleet, simulated: Simulated
) -> None:
    full_store.register_fleet(fleet)
    first = simulated.batches[:5]
    readings = sum(len(b.readings) for b in first)
    for batch in first:
        full_store.write(batch)
    for batch in first:
        result = full_store.write(batch)
        # An overwriting sink cannot tell a re-delivered reading from a new one (docs/storage.md).
        assert result.readings_inserted + result.readings_duplicate == len(batch.readings)
    assert full_store.reading_count() == readings


def test_register_fleet_twice_changes_nothing(target: Target, fleet: Fleet) -> None:
    target.register_fleet(fleet)
    target.register_fleet(fleet)
    assert target.registered_instruments() == 6
    assert target.counts_by_status() == {**dict.fromkeys(STATUS_KEYS, 0), NO_DATA: 6}
    assert target.counts_by_site() == {
        ("acme", "north"): {**dict.fromkeys(STATUS_KEYS, 0), NO_DATA: 3},
        ("acme", "south"): {**dict.fromkeys(STATUS_KEYS, 0), NO_DATA: 1},
        ("globex", "main"): {**dict.fromkeys(STATUS_KEYS, 0), NO_DATA: 2},
    }
    history = target.calibration_history("acme-n-TT-003")
    assert [(r.certificate_id, r.revision) for r in history.all_revisions] == [
        ("CAL-acme-n-TT-003-1", 0),
        ("CAL-acme-n-TT-003-2", 0),
    ]
    assert history.records == fleet.calibrations["acme-n-TT-003"].records


def test_a_subset_of_the_fleet_registers_alone(target: Target, fleet: Fleet) -> None:
    # The subset keeps the provider, whose client acme is not in it (foreign keys on PostgreSQL).
    subset = fleet.subset(["globex-TT-001"])
    assert set(subset.tenants) == {"globex", "calprov"}
    target.register_fleet(subset)
    assert target.registered_instruments() == 1
    assert target.counts_by_site() == {
        ("globex", "main"): {**dict.fromkeys(STATUS_KEYS, 0), NO_DATA: 1}
    }
    target.register_fleet(fleet)
    assert target.registered_instruments() == 6


def _amended(fleet: Fleet, instrument_id: str, revision: int = 1) -> Fleet:
    history = fleet.calibrations[instrument_id]
    newest = history.latest()
    assert newest is not None
    amendment = Amendment(
        newest.certificate_id, revision, 1_790_000_000.0 + revision, "j.doe",
        f"transcription error in U (revision {revision})",
    )  # fmt: skip
    amended = history.amend(replace(newest, expanded_uncertainty=0.08), amendment)
    return replace(fleet, calibrations={**fleet.calibrations, instrument_id: amended})


def test_amendments_keep_every_revision_and_the_audit_trail(target: Target, fleet: Fleet) -> None:
    target.register_fleet(fleet)
    amended = _amended(fleet, "globex-TT-001")
    target.register_fleet(amended)
    # A fleet file that does not carry the amendment does not undo it.
    target.register_fleet(fleet)
    history = target.calibration_history("globex-TT-001")
    trail = history.audit_trail("CAL-globex-TT-001-1")
    assert [r.revision for r in trail] == [0, 1]
    assert trail[0].amendment is None and trail[0].expanded_uncertainty == 0.06
    assert trail[1].amendment == Amendment(
        "CAL-globex-TT-001-1", 1, 1_790_000_001.0, "j.doe", "transcription error in U (revision 1)"
    )
    assert trail[1].expanded_uncertainty == 0.08
    assert history.records == amended.calibrations["globex-TT-001"].records
    assert history.valid_at(1_790_000_000.0) == trail[1]


def test_a_registered_revision_is_never_changed(target: Target, fleet: Fleet) -> None:
    target.register_fleet(fleet)
    history = fleet.calibrations["acme-n-TT-001"]
    record = history.records[0]
    edited_history = CalibrationHistory([replace(record, interval_days=180.0)])
    spec = replace(fleet.instruments["acme-n-TT-001"], description="changed in the same call")
    renamed = replace(
        fleet,
        calibrations={**fleet.calibrations, "acme-n-TT-001": edited_history},
        instruments={**fleet.instruments, "acme-n-TT-001": spec},
    )
    with pytest.raises(StorageError, match=r"CAL-acme-n-TT-001-1 revision 0 .* interval_days"):
        target.register_fleet(renamed)
    # Refused whole (one transaction): the stored revision is the original.
    assert target.calibration_history("acme-n-TT-001").records == history.records
    target.register_fleet(fleet)
    assert target.registered_instruments() == 6


def test_curve_correction_stored_and_read_back(target: Target, fleet: Fleet) -> None:
    curve = CurveCorrection(((0.0, 0.05), (50.0, 0.02), (100.0, -0.01), (200.0, -0.08)))
    record = replace(fleet.calibrations["acme-n-TT-002"].records[0], correction=curve)
    with_curve = replace(
        fleet, calibrations={**fleet.calibrations, "acme-n-TT-002": CalibrationHistory([record])}
    )
    target.register_fleet(with_curve)
    target.register_fleet(with_curve)
    stored = target.calibration_history("acme-n-TT-002").records
    assert len(stored) == 1
    assert stored[0].correction == curve
    assert stored[0].correction.apply(75.0) == curve.apply(75.0) == 75.005
    assert stored[0] == record


def test_an_older_snapshot_does_not_roll_the_state_back(
    target: Target,
    fleet: Fleet,
    make_snapshot: Callable[..., HealthSnapshot],
    t0: float,
) -> None:
    target.register_fleet(fleet)
    newer = make_snapshot("acme-n-TT-001", Status.DRIFTING, t0 + 100, numbers={"residual": 0.3})
    older = make_snapshot("acme-n-TT-001", Status.OK, t0 + 50)
    write(target, OutputBatch(snapshots=[newer]))
    write(target, OutputBatch(snapshots=[older]))
    assert target.snapshots() == [newer]
    latest = make_snapshot("acme-n-TT-001", Status.OUT_OF_TOLERANCE, t0 + 200)
    write(target, OutputBatch(snapshots=[latest]))
    assert target.snapshots() == [latest]
    assert target.counts_by_status("acme")["OUT_OF_TOLERANCE"] == 1


def test_alerts_are_stored_once_newest_first(
    target: Target, make_change: Callable[..., StatusChange], t0: float
) -> None:
    changes = [
        make_change("acme-n-TT-001", t0 + 10, Status.DRIFTING, Status.OK),
        make_change("acme-n-TT-001", t0 + 20, Status.OUT_OF_TOLERANCE, Status.DRIFTING),
        make_change("globex-TT-001", t0 + 15, Status.OFFLINE, None),
    ]
    assert write(target, OutputBatch(changes=changes)) == (3, 0)
    assert write(target, OutputBatch(changes=changes[1:])) == (0, 0)
    assert target.alert_count() == 3
    assert target.alerts() == [changes[1], changes[2], changes[0]]
    assert target.alerts(limit=1) == [changes[1]]


def test_dead_letters_by_reason_once_per_batch_content(
    target: Target, make_dead_letter: Callable[..., DeadLetter], t0: float
) -> None:
    twins = [make_dead_letter(RejectReason.MALFORMED_JSON, 2)] * 2  # two alike in one batch
    other = make_dead_letter(RejectReason.BAD_TOPIC, 1, received_at=t0 + 1, tenant=None)
    batch = OutputBatch(dead_letters=[*twins, other])
    assert write(target, batch) == (0, 3)
    assert write(target, batch) == (0, 0)  # the same batch again
    redelivered = make_dead_letter(RejectReason.MALFORMED_JSON, 2, received_at=t0 + 9)
    assert write(target, OutputBatch(dead_letters=[redelivered])) == (0, 1)
    assert target.dead_letters_by_reason() == {"bad_topic": 1, "malformed_json": 6}
    assert target.dead_letter_count() == 7
    assert target.recent_dead_letters(2) == [redelivered, other]


def test_tenant_scoped_queries_never_return_another_tenants_rows(
    target: Target, fleet: Fleet, simulated: Simulated
) -> None:
    target.register_fleet(fleet)
    for batch in simulated.batches:
        write(target, batch)
    for tenant in ("acme", "globex"):
        expected = simulated.statuses(fleet, tenant)
        assert target.counts_by_status(tenant) == expected
        assert {s.tenant for s in target.snapshots(tenant)} == {tenant}
        assert {s.tenant for s in target.worst_instruments(50, tenant)} == {tenant}
        alerts = target.alerts(1000, tenant)
        assert {a.tenant for a in alerts} == {tenant}
        assert len(alerts) == sum(1 for c in simulated.changes if c.tenant == tenant)
    assert target.snapshots("calprov") == target.alerts(tenant="calprov") == []
    assert target.counts_by_status("calprov") == dict.fromkeys(STATUS_KEYS, 0)
    order = [s.status for s in target.worst_instruments(50)]
    assert order == sorted(order, key=SEVERITY.index)
    assert Counter(order) == Counter(
        s.status for s in simulated.processor.states.values() if s.status is not None
    )


def test_scoped_reads_under_each_scope_are_the_tenant_queries(
    target: Target, fleet: Fleet, simulated: Simulated
) -> None:
    """The reads the API serves, on every store: under the local scope they are the platform's
    own queries; under a tenant's viewer, the tenant-scoped ones."""
    target.register_fleet(fleet)
    for batch in simulated.batches:
        write(target, batch)
    local = target.operations.scope(Principal.local())
    health = target.fleet_health(local, worst=50)
    assert health.counts == target.counts_by_status() == simulated.statuses(fleet)
    assert health.worst == target.worst_instruments(50)
    assert list(target.status_history(local, limit=1000).items) == target.alerts(1000)
    assert list(target.dead_letters(local, limit=1000).items) == target.recent_dead_letters(1000)
    assert [i.instrument_id for i in target.instruments(local)] == sorted(fleet.instruments)
    assert len(target.due_list(local)) == 6
    for tenant in ("acme", "globex"):
        scope = target.operations.scope(Principal(tenant, tenant, Role.VIEWER, "tok"))
        assert target.fleet_health(scope).counts == target.counts_by_status(tenant)
        assert list(target.status_history(scope, limit=1000).items) == target.alerts(1000, tenant)
    if isinstance(target, SqlRegistry):
        return
    times = [r.ts for b in simulated.batches for r, _ in b.readings
             if r.instrument_id == "acme-n-TT-001"]  # fmt: skip
    if isinstance(target, CompositeStore):
        with pytest.raises(UnsupportedQuery):
            target.instrument_series(local, "acme-n-TT-001", min(times), max(times) + 1)
        return
    buckets = target.instrument_series(local, "acme-n-TT-001", min(times), max(times) + 1, 24)
    assert len(buckets) <= 24
    assert sum(b.readings for b in buckets) == len(set(times))


def test_demo_with_an_influxdb_store_fills_it(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from calstream.cli import app

    server = _series_server(request, "influxdb")
    monkeypatch.delenv("CALSTREAM_CONFIG", raising=False)
    monkeypatch.delenv("CALSTREAM_STORE", raising=False)
    monkeypatch.delenv("CALSTREAM_REGISTRY", raising=False)
    monkeypatch.setenv("CALSTREAM_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("CALSTREAM_METRICS_PORT", "0")
    demo = CliRunner().invoke(
        app,
        ["demo", "--duration", "3", "--sim-days", "10", "--store", server.store_url, "--json"],
    )
    assert demo.exit_code == 0, demo.output
    summary = json.loads(demo.stdout.strip().splitlines()[-1])
    assert summary["published"] > 10_000
    assert summary["stored"] == summary["published"]
    assert not (tmp_path / "work" / "calstream.sqlite").exists()  # nothing went to SQLite
    answer = server.query('SELECT count("seq") FROM "reading"')
    assert answer["results"][0]["series"][0]["values"][0][1] == summary["published"]
    status = CliRunner().invoke(app, ["status", "--store", server.store_url, "--json"])
    assert status.exit_code == 0, status.output
    document = json.loads(status.stdout.strip().splitlines()[-1])
    assert document["readings"] == summary["published"]
    assert document["instruments_by_status"] == summary["instruments_by_status"]
    assert sum(document["instruments_by_status"].values()) == 60


def test_composite_outages_of_either_side_store_nothing_twice(
    request: pytest.FixtureRequest, fleet: Fleet, simulated: Simulated
) -> None:
    from storage.influx import InfluxSink

    influx = _series_server(request, "influxdb")
    postgres = request.getfixturevalue("postgres")
    store = CompositeStore(
        InfluxSink.from_url(influx.store_url, retry_s=0.5), SqlRegistry(postgres.url)
    )
    try:
        store.register_fleet(fleet)
        with_changes = [b for b in simulated.batches[1:] if b.changes and b.readings]
        first, second, third = simulated.batches[0], with_changes[0], with_changes[1]
        assert first.dead_letters and second.changes and third.changes
        store.write(first)
        # The series server is away: the write fails before the registry is touched.
        influx.stop()
        try:
            with pytest.raises(StorageError):
                store.write(second)
        finally:
            influx.start()
        assert store.alert_count() == len(first.changes)
        # The registry is away: the series of `second` land, its events do not; the pipeline
        # writes the batch again once the registry is back.
        postgres.server.stop()
        try:
            with pytest.raises(StorageError):
                store.write(second)
        finally:
            postgres.server.start()
        for batch in (second, second, third):
            store.write(batch)
        expected = {(r.instrument_id, r.ts, r.seq) for b in (first, second, third)
                    for r, _ in b.readings}  # fmt: skip
        assert store.reading_count() == len(expected)
        assert store.alert_count() == sum(len(b.changes) for b in (first, second, third))
        assert store.dead_letter_count() == sum(
            d.count for b in (first, second, third) for d in b.dead_letters
        )
    finally:
        store.close()
