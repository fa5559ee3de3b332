"""Queries of the embedded store: health counts, worst instruments, alerts, tenant scope, WAL."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from metrology.assessment import Assessment, HealthSnapshot, StatusChange
from metrology.batch import OutputBatch
from metrology.fleet import Fleet
from metrology.health import Status
from metrology.reading import Reading
from storage.queries import NO_DATA, STATUS_KEYS
from storage.sqlite_store import SqliteStore

ReadingFactory = Callable[..., tuple[Reading, Assessment]]


def _counts(**nonzero: int) -> dict[str, int]:
    counts = dict.fromkeys(STATUS_KEYS, 0)
    counts.update(nonzero)
    return counts


@pytest.fixture
def populated(
    store: SqliteStore,
    fleet: Fleet,
    make_snapshot: Callable[..., HealthSnapshot],
    make_change: Callable[..., StatusChange],
    t0: float,
) -> SqliteStore:
    """acme-n-001 OK, acme-n-002 DRIFTING, acme-n-003 OUT_OF_TOLERANCE, acme-s-PT-001 never seen;
    globex-001 DRIFTING (changed later than acme-n-002), globex-002 OFFLINE."""
    store.register_fleet(fleet)
    store.write(
        OutputBatch(
            snapshots=[
                make_snapshot("acme-n-TT-001", Status.OK, t0 + 50),
                make_snapshot("acme-n-TT-002", Status.DRIFTING, t0 + 50),
                make_snapshot("acme-n-TT-003", Status.OUT_OF_TOLERANCE, t0 + 50),
                make_snapshot("globex-TT-001", Status.DRIFTING, t0 + 50),
                make_snapshot("globex-TT-002", Status.OFFLINE, t0 + 50),
            ],
            changes=[
                make_change("acme-n-TT-002", t0 + 10, Status.DRIFTING, Status.OK),
                make_change("acme-n-TT-003", t0 + 20, Status.DRIFTING, Status.OK),
                make_change("acme-n-TT-003", t0 + 30, Status.OUT_OF_TOLERANCE, Status.DRIFTING),
                make_change("globex-TT-001", t0 + 40, Status.DRIFTING, None),
                make_change("globex-TT-002", t0 + 5, Status.OFFLINE, Status.OK),
            ],
        )
    )
    return store


def test_counts_by_status_report_never_seen_instruments_as_no_data(populated: SqliteStore) -> None:
    assert populated.counts_by_status() == _counts(
        OK=1, DRIFTING=2, OUT_OF_TOLERANCE=1, OFFLINE=1, NO_DATA=1
    )
    assert list(populated.counts_by_status()) == list(STATUS_KEYS)
    assert STATUS_KEYS[0] == "OUT_OF_TOLERANCE" and STATUS_KEYS[-1] == NO_DATA
    assert populated.counts_by_status("acme") == _counts(
        OK=1, DRIFTING=1, OUT_OF_TOLERANCE=1, NO_DATA=1
    )
    assert populated.counts_by_status("globex") == _counts(DRIFTING=1, OFFLINE=1)
    assert populated.counts_by_status("nobody") == _counts()


def test_counts_include_state_of_unregistered_instruments(
    store: SqliteStore, make_snapshot: Callable[..., HealthSnapshot]
) -> None:
    store.write(OutputBatch(snapshots=[make_snapshot("acme-n-TT-001", Status.CAL_OVERDUE)]))
    assert store.counts_by_status() == _counts(CAL_OVERDUE=1)
    assert store.counts_by_site() == {("acme", "north"): _counts(CAL_OVERDUE=1)}


def test_counts_by_site(populated: SqliteStore) -> None:
    assert populated.counts_by_site() == {
        ("acme", "north"): _counts(OK=1, DRIFTING=1, OUT_OF_TOLERANCE=1),
        ("acme", "south"): _counts(NO_DATA=1),
        ("globex", "main"): _counts(DRIFTING=1, OFFLINE=1),
    }


def test_worst_instruments_by_severity_then_most_recent_change(populated: SqliteStore) -> None:
    worst = populated.worst_instruments()
    assert [(s.instrument_id, s.status) for s in worst] == [
        ("acme-n-TT-003", Status.OUT_OF_TOLERANCE),
        ("globex-TT-002", Status.OFFLINE),
        ("globex-TT-001", Status.DRIFTING),  # changed at t0+40, after acme-n-TT-002 (t0+10)
        ("acme-n-TT-002", Status.DRIFTING),
        ("acme-n-TT-001", Status.OK),
    ]
    assert [s.instrument_id for s in populated.worst_instruments(limit=2)] == [
        "acme-n-TT-003",
        "globex-TT-002",
    ]
    assert [s.instrument_id for s in populated.worst_instruments(tenant="acme")] == [
        "acme-n-TT-003",
        "acme-n-TT-002",
        "acme-n-TT-001",
    ]


def test_alerts_newest_first(populated: SqliteStore, t0: float) -> None:
    alerts = populated.alerts()
    assert [(a.instrument_id, a.ts) for a in alerts] == [
        ("globex-TT-001", t0 + 40),
        ("acme-n-TT-003", t0 + 30),
        ("acme-n-TT-003", t0 + 20),
        ("acme-n-TT-002", t0 + 10),
        ("globex-TT-002", t0 + 5),
    ]
    assert alerts[0].previous is None
    assert alerts[1].previous is Status.DRIFTING and alerts[1].status is Status.OUT_OF_TOLERANCE
    assert alerts[1].numbers == {"residual": 0.3, "rule": "simple acceptance"}
    assert alerts[1].reasons == (f"OUT_OF_TOLERANCE since {t0 + 30:.0f}",)
    assert [a.ts for a in populated.alerts(limit=2)] == [t0 + 40, t0 + 30]
    assert populated.alert_count() == 5


def test_status_history_view(populated: SqliteStore, store_path: Path) -> None:
    with sqlite3.connect(store_path) as conn:
        rows = conn.execute(
            "SELECT ts_utc, previous, status FROM status_history "
            "WHERE instrument_id = 'acme-n-TT-003' ORDER BY ts"
        ).fetchall()
    assert rows == [
        ("2026-05-28T20:27:00.000Z", "OK", "DRIFTING"),
        ("2026-05-28T20:27:10.000Z", "DRIFTING", "OUT_OF_TOLERANCE"),
    ]


def test_tenant_scoped_queries_never_return_another_tenants_rows(populated: SqliteStore) -> None:
    for tenant, expected in (("acme", 3), ("globex", 2)):
        snapshots = populated.snapshots(tenant)
        alerts = populated.alerts(tenant=tenant)
        worst = populated.worst_instruments(tenant=tenant)
        assert len(snapshots) == len(worst) == expected
        assert {s.tenant for s in snapshots} == {s.tenant for s in worst} == {tenant}
        assert {a.tenant for a in alerts} == {tenant}
    assert len(populated.alerts(tenant="acme")) == 3
    assert populated.snapshots("calprov") == populated.alerts(tenant="calprov") == []
    assert len(populated.snapshots()) == 5


def test_a_second_connection_reads_while_a_write_transaction_is_open(
    store: SqliteStore, store_path: Path, make_reading: ReadingFactory
) -> None:
    store.write(OutputBatch(readings=[make_reading("acme-n-TT-001", s) for s in range(10)]))
    writer = sqlite3.connect(store_path, isolation_level=None, timeout=0.1)
    reader = sqlite3.connect(store_path, isolation_level=None, timeout=0.1)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute(
            "INSERT INTO readings (instrument_id, ts, seq, value, status) "
            "VALUES ('acme-n-TT-001', 1.0, 99, 1.0, 'OK')"
        )
        # WAL: the reader is not blocked and sees the last committed state only.
        assert reader.execute("SELECT COUNT(*) FROM readings").fetchone() == (10,)
        assert store.reading_count() == 10
        # ...while a second writer waits for the lock and gives up (single writer).
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            reader.execute("BEGIN IMMEDIATE")
        writer.execute("COMMIT")
        assert reader.execute("SELECT COUNT(*) FROM readings").fetchone() == (11,)
    finally:
        writer.close()
        reader.close()


def test_store_readable_by_another_connection_during_store_write(
    store: SqliteStore, store_path: Path, make_reading: ReadingFactory
) -> None:
    reader = sqlite3.connect(store_path, isolation_level=None)
    try:
        reader.execute("BEGIN")  # a long-running reader (a Grafana query, say) holds a snapshot
        assert reader.execute("SELECT COUNT(*) FROM readings").fetchone() == (0,)
        result = store.write(
            OutputBatch(readings=[make_reading("acme-n-TT-001", s) for s in range(7)])
        )
        assert result.readings_inserted == 7
        assert reader.execute("SELECT COUNT(*) FROM readings").fetchone() == (0,)
        reader.execute("COMMIT")
        assert reader.execute("SELECT COUNT(*) FROM readings").fetchone() == (7,)
    finally:
        reader.close()
