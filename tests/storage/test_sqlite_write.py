"""SqliteStore.write: one transaction per batch, exact counts, idempotent re-delivery."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from metrology.assessment import Assessment, HealthSnapshot, StatusChange
from metrology.batch import OutputBatch
from metrology.fleet import Fleet
from metrology.health import Status
from metrology.reading import Reading
from metrology.wire import DeadLetter, RejectReason
from storage.batch import WriteResult
from storage.errors import StorageError
from storage.sqlite_store import SqliteStore

ReadingFactory = Callable[..., tuple[Reading, Assessment]]


VERSION_1_COLUMNS = (
    "tenant", "site", "gateway", "instrument_id", "ts", "value", "unit", "seq", "corrected",
    "certificate_id", "reference", "residual", "u_residual", "ewma", "cusum_high", "cusum_low",
    "drift_rate", "status",
)  # fmt: skip
"""The columns of schema version 1's wide ``readings`` table, in its order."""


def _version_1_row(reading: Reading, assessment: Assessment) -> tuple[Any, ...]:
    """What schema version 1 stored: Reading[:8] + Assessment[3:], the status as text."""
    return (*reading[:8], *assessment[3:12], assessment.status.value)


def test_readings_written_and_read_back(
    store: SqliteStore,
    store_path: Path,
    fleet: Fleet,
    make_reading: ReadingFactory,
    t0: float,
) -> None:
    store.register_fleet(fleet)
    batch = OutputBatch(readings=[make_reading("acme-n-TT-001", seq) for seq in range(5)])
    batch.readings.append(make_reading("globex-TT-001", 0, value=20.0, status=Status.DRIFTING))
    assert store.write(batch) == WriteResult(6, 0, 0, 0)
    assert store.reading_count() == 6
    with sqlite3.connect(store_path) as conn:
        row = conn.execute(
            "SELECT tenant, site, gateway, instrument_id, ts, seq, value, unit, corrected, "
            "certificate_id, reference, residual, u_residual, ewma, cusum_high, cusum_low, "
            "drift_rate, status, measurand FROM readings_full WHERE instrument_id = 'globex-TT-001'"
        ).fetchone()
        per_instrument = conn.execute(
            "SELECT instrument_id, COUNT(*), MIN(ts), MAX(ts) FROM readings "
            "GROUP BY instrument_id ORDER BY instrument_id"
        ).fetchall()
        per_tenant = conn.execute(
            "SELECT instrument_id, COUNT(*) FROM readings_full "
            "WHERE tenant = ? AND ts BETWEEN ? AND ? GROUP BY instrument_id",
            ("acme", t0 + 60.0, t0 + 180.0),
        ).fetchall()
    assert row == (
        "globex", "main", "gw-01", "globex-TT-001", t0, 0, 20.0, "degC", 20.02,
        "CAL-globex-TT-001-1", 21.48, pytest.approx(20.02 - 21.48), 0.032, 0.01, 0.0, 0.0,
        0.001, "DRIFTING", "temperature",
    )  # fmt: skip
    assert per_instrument == [
        ("acme-n-TT-001", 5, t0, t0 + 240.0),
        ("globex-TT-001", 1, t0, t0),
    ]
    assert per_tenant == [("acme-n-TT-001", 3)]


def test_readings_without_a_residual_write_no_residuals_row(
    store: SqliteStore, store_path: Path, fleet: Fleet, make_reading: ReadingFactory
) -> None:
    store.register_fleet(fleet)
    readings = [make_reading("acme-n-TT-002", seq, reference=seq % 4 == 0) for seq in range(20)]
    assert store.write(OutputBatch(readings=readings)) == WriteResult(20, 0, 0, 0)
    assert store.reading_count() == 20
    with sqlite3.connect(store_path) as conn:
        residual_seqs = [s for (s,) in conn.execute("SELECT seq FROM residuals ORDER BY seq")]
        bare = conn.execute(
            "SELECT tenant, unit, corrected, certificate_id, reference, residual, u_residual, "
            "ewma, cusum_high, cusum_low, drift_rate, status FROM readings_full WHERE seq = 1"
        ).fetchone()
    assert residual_seqs == [0, 4, 8, 12, 16]
    assert bare == (
        "acme", "degC", 21.52, "CAL-acme-n-TT-002-1", None, None, None, None, None, None, None,
        "OK",
    )  # fmt: skip


def test_a_late_reading_keeps_its_reference_without_a_residual(
    store: SqliteStore, store_path: Path, make_reading: ReadingFactory
) -> None:
    # The detectors skip a late reading: it carries its reference but no residual (step.py).
    reading, assessment = make_reading("acme-n-TT-001", 3)
    late = assessment._replace(
        residual=None, u_residual=None, ewma=None, cusum_high=None, cusum_low=None, drift_rate=None
    )
    store.write(OutputBatch(readings=[(reading, late)]))
    with sqlite3.connect(store_path) as conn:
        assert conn.execute("SELECT reference, residual, drift_rate FROM residuals").fetchall() == [
            (21.48, None, None)
        ]


def test_readings_full_has_the_version_1_columns_and_values(
    store: SqliteStore,
    store_path: Path,
    fleet: Fleet,
    make_reading: ReadingFactory,
    t0: float,
) -> None:
    store.register_fleet(fleet)
    readings = [
        make_reading("acme-n-TT-001", 0),
        make_reading("acme-n-TT-001", 1, reference=False, status=Status.AT_RISK),
        make_reading("acme-n-TT-003", 0, ts=t0, value=19.75, reference=False),
        make_reading("globex-TT-002", 7, value=22.125, status=Status.OUT_OF_TOLERANCE),
    ]
    reading, assessment = make_reading("globex-TT-001", 2)
    readings.append((reading, assessment._replace(certificate_id=None, residual=None)))
    store.write(OutputBatch(readings=readings))
    with sqlite3.connect(store_path) as conn:
        cursor = conn.execute("SELECT * FROM readings_full ORDER BY instrument_id, ts, seq")
        columns = tuple(d[0] for d in cursor.description)
        rows = [row[: len(VERSION_1_COLUMNS)] for row in cursor.fetchall()]
    assert columns == (*VERSION_1_COLUMNS, "measurand")
    expected = sorted((_version_1_row(r, a) for r, a in readings), key=lambda row: row[3:])
    assert rows == expected


def test_readings_of_an_unregistered_instrument_are_kept(
    store: SqliteStore, store_path: Path, make_reading: ReadingFactory
) -> None:
    # No registry row: the reading is stored and counted; the view has no tenant/site/unit for it.
    assert store.write(OutputBatch(readings=[make_reading("acme-n-TT-001", 0)])).readings_inserted
    with sqlite3.connect(store_path) as conn:
        assert conn.execute(
            "SELECT tenant, site, gateway, unit, value, residual FROM readings_full"
        ).fetchall() == [(None, None, None, None, 21.5, pytest.approx(0.04))]


def test_same_batch_twice_inserts_nothing_the_second_time(
    store: SqliteStore,
    make_reading: ReadingFactory,
    make_change: Callable[..., StatusChange],
    make_dead_letter: Callable[..., DeadLetter],
    t0: float,
) -> None:
    batch = OutputBatch(
        readings=[make_reading("acme-n-TT-002", seq) for seq in range(100)],
        changes=[make_change("acme-n-TT-002")],
        dead_letters=[make_dead_letter(count=3)],
    )
    assert store.write(batch) == WriteResult(100, 0, 1, 1)
    # The same batch again (a retried write): readings, the status change and the dead letter
    # are stored once. A bad message the broker delivers again arrives again (another
    # received_at) and is a new dead letter: it was received twice.
    assert store.write(batch) == WriteResult(0, 100, 0, 0)
    again = OutputBatch(dead_letters=[make_dead_letter(count=3, received_at=t0 + 5.0)])
    assert store.write(again) == WriteResult(0, 0, 0, 1)
    assert store.reading_count() == 100
    assert _residual_count(store) == 100
    assert store.alert_count() == 1
    assert store.dead_letter_count() == 6


def _residual_count(store: SqliteStore) -> int:
    return int(store._conn.execute("SELECT COUNT(*) FROM residuals").fetchone()[0])


def test_redelivered_readings_are_ignored_in_both_tables(
    store: SqliteStore, make_reading: ReadingFactory
) -> None:
    batch = OutputBatch(
        readings=[make_reading("acme-n-TT-001", s, reference=s % 2 == 0) for s in range(10)]
    )
    assert store.write(batch) == WriteResult(10, 0, 0, 0)
    assert _residual_count(store) == 5
    # Processed again (say after a restart) the same readings may get other numbers; whether
    # they have any is the message's (its reference), so the residuals rows match as well.
    changed = [
        (r, a._replace(corrected=-1.0, residual=None if a.reference is None else -1.0))
        for r, a in batch.readings
    ]
    assert store.write(OutputBatch(readings=changed)) == WriteResult(0, 10, 0, 0)
    assert (store.reading_count(), _residual_count(store)) == (10, 5)
    stored = store._conn.execute("SELECT MIN(corrected) FROM readings").fetchone()[0]
    assert stored > 0  # the first delivery stands
    assert store._conn.execute("SELECT MIN(residual) FROM residuals").fetchone()[0] > 0


def test_partly_known_batch_counts_exactly(
    store: SqliteStore, make_reading: ReadingFactory
) -> None:
    store.write(OutputBatch(readings=[make_reading("acme-n-TT-001", s) for s in range(0, 60)]))
    overlapping = [make_reading("acme-n-TT-001", s) for s in range(40, 100)]
    overlapping.append(make_reading("acme-n-TT-001", 99))  # a duplicate inside the batch too
    assert store.write(OutputBatch(readings=overlapping)) == WriteResult(40, 21, 0, 0)
    assert store.reading_count() == 100


def test_batches_of_any_size_count_exactly(
    store: SqliteStore, make_reading: ReadingFactory
) -> None:
    # Rows go in 50 per statement (ROWS_PER_STATEMENT) plus a shorter last statement.
    readings = [make_reading("acme-n-TT-001", s, reference=s % 3 == 0) for s in range(123)]
    assert store.write(OutputBatch(readings=readings)) == WriteResult(123, 0, 0, 0)
    assert (store.reading_count(), _residual_count(store)) == (123, 41)
    more = readings[100:] + [make_reading("acme-n-TT-001", s) for s in range(123, 180)]
    assert store.write(OutputBatch(readings=more)) == WriteResult(57, 23, 0, 0)
    assert (store.reading_count(), _residual_count(store)) == (180, 98)
    assert store.write(OutputBatch(readings=[make_reading("acme-n-TT-001", 500)])).readings_inserted


def test_same_time_different_sequence_is_a_different_reading(
    store: SqliteStore, make_reading: ReadingFactory, t0: float
) -> None:
    batch = OutputBatch(readings=[make_reading("acme-n-TT-001", seq, ts=t0) for seq in (7, 8)])
    assert store.write(batch).readings_inserted == 2


def test_empty_batch_is_a_no_op(store: SqliteStore) -> None:
    assert store.write(OutputBatch()) == WriteResult(0, 0, 0, 0)


def test_failed_batch_is_rolled_back_whole(
    store: SqliteStore, make_reading: ReadingFactory, make_snapshot: Callable[..., HealthSnapshot]
) -> None:
    good = make_reading("acme-n-TT-001", 1)
    broken = make_reading("acme-n-TT-001", 2)
    # An object sqlite3 cannot bind fails the statement after the first rows went in.
    broken = (broken[0]._replace(value=object()), broken[1])  # type: ignore[arg-type]
    batch = OutputBatch(readings=[good, broken], snapshots=[make_snapshot()])
    with pytest.raises(StorageError, match="write 2 readings, 1 snapshots") as caught:
        store.write(batch)
    assert isinstance(caught.value.__cause__, sqlite3.Error)
    assert store.reading_count() == 0
    assert _residual_count(store) == 0
    assert store.snapshots() == []
    assert store.write(OutputBatch(readings=[good])).readings_inserted == 1


def test_snapshot_upsert_keeps_only_the_latest(
    store: SqliteStore,
    store_path: Path,
    make_snapshot: Callable[..., HealthSnapshot],
    t0: float,
) -> None:
    first = make_snapshot("acme-n-TT-001", Status.OK, t0)
    latest = make_snapshot(
        "acme-n-TT-001",
        Status.AT_RISK,
        t0 + 600.0,
        numbers={
            "residual": 0.31, "u_residual": 0.03, "drift_rate": 0.012,
            "predicted_oot_at": t0 + 86_400.0 * 12, "probability_of_conformity": 0.91,
            "due_at": t0 + 86_400.0 * 100, "rule": "guarded acceptance",
            "first_drift_at": math.inf,
        },
        conditions=(Status.AT_RISK, Status.DRIFTING),
    )  # fmt: skip
    store.write(OutputBatch(snapshots=[first, latest]))
    store.write(OutputBatch(snapshots=[first]))  # an older, re-delivered state does not roll back
    snapshots = store.snapshots()
    assert len(snapshots) == 1
    stored = snapshots[0]
    assert stored.status is Status.AT_RISK
    assert stored.conditions == (Status.AT_RISK, Status.DRIFTING)
    assert stored.reasons == latest.reasons
    assert (stored.evaluated_at, stored.last_reading_at) == (t0 + 600.0, t0 + 599.0)
    # Non-finite numbers are stored as JSON null (standard JSON for SQLite and Grafana).
    assert stored.numbers == {**latest.numbers, "first_drift_at": None}
    with sqlite3.connect(store_path) as conn:
        columns = conn.execute(
            "SELECT residual, u_residual, drift_rate, predicted_oot_at, probability_of_conformity,"
            " due_at, first_drift_at, json_extract(numbers, '$.rule') FROM instrument_state"
        ).fetchone()
    assert columns == (
        0.31, 0.03, 0.012, t0 + 86_400.0 * 12, 0.91, t0 + 86_400.0 * 100, None,
        "guarded acceptance",
    )  # fmt: skip


def test_missing_numbers_are_null_columns(
    store: SqliteStore, store_path: Path, make_snapshot: Callable[..., HealthSnapshot]
) -> None:
    store.write(
        OutputBatch(snapshots=[make_snapshot("globex-TT-002", Status.UNVERIFIED, numbers={})])
    )
    with sqlite3.connect(store_path) as conn:
        row = conn.execute(
            "SELECT status, residual, drift_rate, due_at, numbers FROM instrument_state"
        ).fetchone()
    assert row == ("UNVERIFIED", None, None, None, "{}")


def test_dead_letters_counted_by_reason(
    store: SqliteStore, make_dead_letter: Callable[..., DeadLetter], t0: float
) -> None:
    letters = [
        make_dead_letter(RejectReason.MALFORMED_JSON, 1, t0),
        make_dead_letter(RejectReason.UNKNOWN_INSTRUMENT, 12, t0 + 1),
        make_dead_letter(RejectReason.UNKNOWN_INSTRUMENT, 3, t0 + 2),
        make_dead_letter(RejectReason.TENANT_MISMATCH, 250, t0 + 3, tenant=None),
    ]
    assert store.write(OutputBatch(dead_letters=letters)).dead_letters == 4
    assert store.dead_letter_count() == 266
    assert store.dead_letters_by_reason() == {
        "malformed_json": 1,
        "tenant_mismatch": 250,
        "unknown_instrument": 15,
    }
    recent = store.recent_dead_letters(limit=2)
    assert recent == [letters[3], letters[2]]
    assert store.recent_dead_letters() == letters[::-1]


def test_empty_store_counts_are_zero(store: SqliteStore) -> None:
    assert (store.reading_count(), store.dead_letter_count(), store.alert_count()) == (0, 0, 0)
    assert store.dead_letters_by_reason() == {}
    assert store.registered_instruments() == 0
