"""Writing the registry through SQLAlchemy Core, on SQLite or PostgreSQL (the caller's transaction).

The pipeline's outcomes (latest states, status changes, dead letters) and the row of a
calibration revision. Tenants, sites, gateways, instruments, certificates and contracts are
written by the registry operations (:mod:`storage.registry.operations`), the fleet file's
registration included.

The upserts use each dialect's ``INSERT ... ON CONFLICT`` (SQLite 3.24+, PostgreSQL 9.5+); this
module is the only place that knows there are two.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

from metrology.assessment import HealthSnapshot, StatusChange
from metrology.calibration import CalibrationRecord, Correction
from metrology.curves import CurveCorrection
from metrology.wire import DeadLetter
from storage.errors import StorageError
from storage.registry.tables import (
    alerts,
    dead_letters,
    instrument_state,
)
from storage.rows import (
    ALERT_COLUMNS,
    DEAD_LETTER_KEYED_COLUMNS,
    STATE_COLUMNS,
    change_row,
    dead_letter_rows,
    snapshot_row,
)

GAIN_OFFSET = "gain_offset"
CURVE = "curve"
"""``calibrations.correction_kind``: a gain and offset, or a curve of certificate points."""


def _insert(connection: Connection, table: Table) -> Any:
    """The dialect's INSERT with ``on_conflict_*`` (SQLite and PostgreSQL spell it alike)."""
    name = connection.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise StorageError(f"the registry runs on SQLite or PostgreSQL, not {name}")


def _insert_new(
    connection: Connection, table: Table, rows: Sequence[dict[str, Any]], returning: str
) -> int:
    """INSERT the rows whose key is not stored yet; returns how many were inserted."""
    if not rows:
        return 0
    statement = _insert(connection, table).on_conflict_do_nothing().returning(table.c[returning])
    return len(connection.execute(statement, list(rows)).all())


def revision_row(record: CalibrationRecord) -> dict[str, Any]:
    """One revision of a certificate, its correction and its amendment (who, when, why)."""
    correction = record.correction
    if isinstance(correction, Correction):
        kind, offset, gain = GAIN_OFFSET, correction.offset, correction.gain
    elif isinstance(correction, CurveCorrection):
        kind, offset, gain = CURVE, None, None
    else:
        raise StorageError(
            f"certificate {record.certificate_id} of {record.instrument_id}: cannot register a "
            f"{type(correction).__name__} (gain and offset, or a curve of certificate points)"
        )
    amendment = record.amendment
    return {
        "instrument_id": record.instrument_id,
        "certificate_id": record.certificate_id,
        "revision": record.revision,
        "calibrated_at": record.calibrated_at,
        "correction_kind": kind,
        "correction_offset": offset,
        "correction_gain": gain,
        "expanded_uncertainty": record.expanded_uncertainty,
        "coverage_factor": record.coverage_factor,
        "standard_uncertainty": record.standard_uncertainty,
        "interval_days": record.interval_days,
        "due_at": record.due_at,
        "as_found_error": record.as_found_error,
        "amended_at": None if amendment is None else amendment.amended_at,
        "amended_by": None if amendment is None else amendment.amended_by,
        "amendment_reason": None if amendment is None else amendment.reason,
    }


# --- the pipeline's outcomes: latest state, status changes, dead letters ---


def write_snapshots(connection: Connection, snapshots: Iterable[HealthSnapshot]) -> None:
    """Upsert the latest state; an older snapshot (a re-delivered batch) does not roll it back."""
    rows = [dict(zip(STATE_COLUMNS, snapshot_row(s), strict=True)) for s in snapshots]
    if not rows:
        return
    statement = _insert(connection, instrument_state)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["instrument_id"],
            set_={c: statement.excluded[c] for c in STATE_COLUMNS[1:]},
            where=statement.excluded.evaluated_at >= instrument_state.c.evaluated_at,
        ),
        rows,
    )


def write_changes(connection: Connection, changes: Iterable[StatusChange]) -> int:
    """Store status changes not stored yet (unique per instrument, time and status)."""
    rows = [dict(zip(ALERT_COLUMNS, change_row(c), strict=True)) for c in changes]
    return _insert_new(connection, alerts, rows, "id")


def write_dead_letters(connection: Connection, letters: Iterable[DeadLetter]) -> int:
    """Store dead letters not stored yet (keyed: :func:`storage.rows.dead_letter_rows`)."""
    rows = [dict(zip(DEAD_LETTER_KEYED_COLUMNS, r, strict=True)) for r in dead_letter_rows(letters)]
    return _insert_new(connection, dead_letters, rows, "id")
