"""Writing the registry through SQLAlchemy Core, on SQLite or PostgreSQL (the caller's transaction).

Registration is an upsert: registering the same fleet twice changes nothing; an amended
instrument replaces its row; nothing is deleted (readings and alerts keep referring to
instruments that leave the fleet). Calibration revisions are records (ISO/IEC 17025:2017
§7.5.2): each ``(instrument, certificate, revision)`` is stored once and never changed; a fleet
that brings the same revision with other content is refused (:class:`StorageError`: amend the
certificate into a new revision instead). The newest stored revision of each certificate is the
one ``in_force``, even if a later fleet file no longer carries it: amendments are not undone.

The upserts use each dialect's ``INSERT ... ON CONFLICT`` (SQLite 3.24+, PostgreSQL 9.5+); this
module is the only place that knows there are two.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection, Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from metrology.assessment import HealthSnapshot, StatusChange
from metrology.calibration import CalibrationRecord, Correction
from metrology.curves import CurveCorrection
from metrology.fleet import Fleet
from metrology.wire import DeadLetter
from storage.errors import StorageError
from storage.registry.tables import (
    alerts,
    calibration_curve_points,
    calibrations,
    dead_letters,
    instrument_state,
    instruments,
    sites,
    tenant_clients,
    tenants,
)
from storage.rows import (
    ALERT_COLUMNS,
    DEAD_LETTER_KEYED_COLUMNS,
    STATE_COLUMNS,
    change_row,
    dead_letter_rows,
    snapshot_row,
    to_json,
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


def _upsert(
    connection: Connection, table: Table, rows: Sequence[dict[str, Any]], key: Sequence[str]
) -> None:
    if not rows:
        return
    statement = _insert(connection, table)
    updates = {c: statement.excluded[c] for c in rows[0] if c not in key}
    connection.execute(
        statement.on_conflict_do_update(index_elements=list(key), set_=updates), list(rows)
    )


def _insert_new(
    connection: Connection, table: Table, rows: Sequence[dict[str, Any]], returning: str
) -> int:
    """INSERT the rows whose key is not stored yet; returns how many were inserted."""
    if not rows:
        return 0
    statement = _insert(connection, table).on_conflict_do_nothing().returning(table.c[returning])
    return len(connection.execute(statement, list(rows)).all())


def register_fleet(connection: Connection, fleet: Fleet) -> None:
    """Upsert every tenant, site, instrument and calibration revision of ``fleet``."""
    _upsert(
        connection,
        tenants,
        [
            {"tenant_id": t.tenant_id, "name": t.name, "kind": t.kind.value}
            for t in fleet.tenants.values()
        ],
        ("tenant_id",),
    )
    # A provider's client that is neither in this fleet nor registered before (a subset of a
    # fleet keeps the providers) is not a tenant yet: the relation waits for its registration.
    known = set(fleet.tenants) | set(connection.execute(select(tenants.c.tenant_id)).scalars())
    clients = [
        {"provider": t.tenant_id, "client": c}
        for t in fleet.tenants.values()
        for c in t.clients
        if c in known
    ]
    if clients:
        connection.execute(_insert(connection, tenant_clients).on_conflict_do_nothing(), clients)
    _upsert(
        connection,
        sites,
        [{"tenant": s.tenant, "site_id": s.site_id, "name": s.name} for s in fleet.sites.values()],
        ("tenant", "site_id"),
    )
    _upsert(connection, instruments, instrument_rows(fleet), ("instrument_id",))
    revisions, points = calibration_rows(fleet)
    if revisions:
        connection.execute(_insert(connection, calibrations).on_conflict_do_nothing(), revisions)
    if points:
        connection.execute(
            _insert(connection, calibration_curve_points).on_conflict_do_nothing(), points
        )
    _refuse_changed_revisions(connection, revisions, points)
    _mark_in_force(connection)


def instrument_rows(fleet: Fleet) -> list[dict[str, Any]]:
    rows = []
    for spec in fleet.instruments.values():
        measuring_range = fleet.ranges[spec.instrument_id]
        rows.append(
            {
                "instrument_id": spec.instrument_id,
                "tenant": spec.tenant,
                "site": spec.site,
                "gateway": spec.gateway,
                "measurand": spec.measurand,
                "unit": spec.unit,
                "tolerance_lower": spec.tolerance.lower,
                "tolerance_upper": spec.tolerance.upper,
                "tolerance_relative": spec.tolerance.relative,
                "reporting_period_s": spec.reporting_period_s,
                "reference_kind": spec.reference.kind.value,
                "peer_group": spec.reference.peer_group,
                "reference_instrument": spec.reference.reference_instrument,
                "range_low": measuring_range.low,
                "range_high": measuring_range.high,
                "description": spec.description,
                "decision_rule": None if spec.decision_rule is None else str(spec.decision_rule),
                "interval_policy": None
                if spec.interval_policy is None
                else to_json(asdict(spec.interval_policy)),
            }
        )
    return rows


def calibration_rows(fleet: Fleet) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of ``calibrations`` (every revision) and ``calibration_curve_points``."""
    revisions: list[dict[str, Any]] = []
    points: list[dict[str, Any]] = []
    for history in fleet.calibrations.values():
        in_force = {(r.certificate_id, r.revision) for r in history.records}
        for record in history.all_revisions:
            row = revision_row(record)
            row["in_force"] = (record.certificate_id, record.revision) in in_force
            revisions.append(row)
            if isinstance(record.correction, CurveCorrection):
                key = {
                    "instrument_id": record.instrument_id,
                    "certificate_id": record.certificate_id,
                    "revision": record.revision,
                }
                points.extend(
                    {**key, "point": n, "indication": x, "correction": c}
                    for n, (x, c) in enumerate(record.correction.points)
                )
    return revisions, points


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


_REVISION_CONTENT = (
    "calibrated_at", "correction_kind", "correction_offset", "correction_gain",
    "expanded_uncertainty", "coverage_factor", "interval_days", "as_found_error", "amended_at",
    "amended_by", "amendment_reason",
)  # fmt: skip


def _refuse_changed_revisions(
    connection: Connection, revisions: list[dict[str, Any]], points: list[dict[str, Any]]
) -> None:
    """Raise when a revision already stored differs from the one being registered."""
    if not revisions:
        return
    stored = {
        (row.instrument_id, row.certificate_id, row.revision): row
        # The whole table: a few rows per instrument, and no limit on bound parameters.
        for row in connection.execute(select(calibrations))
    }
    for wanted in revisions:
        key = (wanted["instrument_id"], wanted["certificate_id"], wanted["revision"])
        row = stored[key]
        changed = [c for c in _REVISION_CONTENT if getattr(row, c) != wanted[c]]
        if changed:
            raise StorageError(
                f"certificate {key[1]} revision {key[2]} of {key[0]} is registered with other "
                f"{', '.join(changed)}: a registered revision is never changed; restore it in "
                "the fleet file and add the change under the certificate's 'amendments:' (a new "
                "revision with who, when and why; see metrology/fleet.py)"
            )
    curves = {(p["instrument_id"], p["certificate_id"], p["revision"]) for p in points}
    if not curves:
        return
    stored_points: dict[tuple[str, str, int], list[tuple[float, float]]] = {}
    for row in connection.execute(
        select(calibration_curve_points).order_by(calibration_curve_points.c.point)
    ):
        key = (row.instrument_id, row.certificate_id, row.revision)
        stored_points.setdefault(key, []).append((row.indication, row.correction))
    wanted_points: dict[tuple[str, str, int], list[tuple[float, float]]] = {}
    for p in points:
        key = (p["instrument_id"], p["certificate_id"], p["revision"])
        wanted_points.setdefault(key, []).append((p["indication"], p["correction"]))
    for key, curve in wanted_points.items():
        if stored_points.get(key) != curve:
            raise StorageError(
                f"certificate {key[1]} revision {key[2]} of {key[0]} is registered with other "
                "curve points: a registered revision is never changed; amend the certificate "
                "instead"
            )


def _mark_in_force(connection: Connection) -> None:
    """``in_force`` = the newest stored revision of each certificate."""
    newest = calibrations.alias("newest")
    latest = (
        select(func.max(newest.c.revision))
        .where(
            newest.c.instrument_id == calibrations.c.instrument_id,
            newest.c.certificate_id == calibrations.c.certificate_id,
        )
        .scalar_subquery()
    )
    connection.execute(update(calibrations).values(in_force=calibrations.c.revision == latest))


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
