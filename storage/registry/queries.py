"""Read queries over the registry in SQLAlchemy Core: the embedded store and SqlRegistry share them.

Every query that takes ``tenant`` is scoped by it in SQL: a tenant-scoped call never returns
another tenant's rows; ``tenants`` (a set of tenant ids, the reads of a caller's scope; ``None``:
every tenant) narrows the same way (:mod:`storage.registry.scoped`). Instruments are counted
over the registry *and* the latest-state table, so an instrument registered but never heard
from shows up as ``NO_DATA``; retired instruments are not counted (they stay for history).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, case, false, func, literal, select, true, union

from metrology.assessment import HealthSnapshot, StatusChange
from metrology.audit import Amendment
from metrology.calibration import CalibrationHistory, CalibrationRecord, Correction
from metrology.curves import CurveCorrection
from metrology.health import SEVERITY
from metrology.wire import DeadLetter
from storage.registry.tables import (
    alerts as alerts_table,
)
from storage.registry.tables import (
    calibration_curve_points,
    calibrations,
    instrument_state,
    instruments,
)
from storage.registry.tables import (
    dead_letters as dead_letters_table,
)
from storage.registry.writes import CURVE
from storage.rows import (
    ALERT_COLUMNS,
    DEAD_LETTER_COLUMNS,
    change_from_row,
    dead_letter_from_row,
    snapshot_from_row,
)
from storage.schema import NO_DATA, STATUS_KEYS

SNAPSHOT_COLUMNS = [
    instrument_state.c[name]
    for name in (
        "instrument_id", "tenant", "site", "status", "conditions", "reasons", "evaluated_at",
        "last_reading_at", "numbers",
    )
]  # fmt: skip


def _zero_counts() -> dict[str, int]:
    return dict.fromkeys(STATUS_KEYS, 0)


def in_tenants(column: Any, tenant: str | None, tenants: Collection[str] | None) -> Any:
    """``column`` is ``tenant`` (when given) and one of ``tenants`` (when given)."""
    clauses = [true() if tenant is None else column == tenant]
    if tenants is not None:
        clauses.append(column.in_(sorted(tenants)) if tenants else false())
    return clauses[0] if len(clauses) == 1 else clauses[0] & clauses[1]


def retired_ids() -> Any:
    return select(instruments.c.instrument_id).where(instruments.c.retired_at.is_not(None))


def _known_instruments() -> Any:
    """(tenant, site, status) of every registered instrument or instrument with a state (but
    not of retired instruments)."""
    known = union(
        select(instruments.c.instrument_id).where(instruments.c.retired_at.is_(None)),
        select(instrument_state.c.instrument_id).where(
            instrument_state.c.instrument_id.not_in(retired_ids())
        ),
    ).subquery("known")
    return (
        select(
            func.coalesce(instruments.c.tenant, instrument_state.c.tenant).label("tenant"),
            func.coalesce(instruments.c.site, instrument_state.c.site).label("site"),
            func.coalesce(instrument_state.c.status, literal(NO_DATA)).label("status"),
        )
        .select_from(known)
        .outerjoin(instruments, instruments.c.instrument_id == known.c.instrument_id)
        .outerjoin(instrument_state, instrument_state.c.instrument_id == known.c.instrument_id)
        .subquery("registered")
    )


def snapshots(connection: Connection, tenant: str | None = None) -> list[HealthSnapshot]:
    query = select(*SNAPSHOT_COLUMNS).order_by(instrument_state.c.instrument_id)
    if tenant is not None:
        query = query.where(instrument_state.c.tenant == tenant)
    return [snapshot_from_row(tuple(row)) for row in connection.execute(query)]


def counts_by_status(
    connection: Connection, tenant: str | None = None, tenants: Collection[str] | None = None
) -> dict[str, int]:
    known = _known_instruments()
    query = (
        select(known.c.status, func.count())
        .where(in_tenants(known.c.tenant, tenant, tenants))
        .group_by(known.c.status)
    )
    counts = _zero_counts()
    for status, count in connection.execute(query):
        counts[status] = counts.get(status, 0) + count
    return counts


def counts_by_site(connection: Connection) -> dict[tuple[str, str], dict[str, int]]:
    known = _known_instruments()
    query = (
        select(known.c.tenant, known.c.site, known.c.status, func.count())
        .group_by(known.c.tenant, known.c.site, known.c.status)
        .order_by(known.c.tenant, known.c.site)
    )
    result: dict[tuple[str, str], dict[str, int]] = {}
    for tenant, site, status, count in connection.execute(query):
        result.setdefault((tenant, site), _zero_counts())[status] = count
    return result


def worst_instruments(
    connection: Connection,
    limit: int = 10,
    tenant: str | None = None,
    tenants: Collection[str] | None = None,
) -> list[HealthSnapshot]:
    """Most severe status first (:data:`metrology.health.SEVERITY`); then the most recent change."""
    severity = case(
        {s.value: rank for rank, s in enumerate(SEVERITY)},
        value=instrument_state.c.status,
        else_=len(SEVERITY),
    )
    changed_at = (
        select(func.max(alerts_table.c.ts))
        .where(alerts_table.c.instrument_id == instrument_state.c.instrument_id)
        .scalar_subquery()
    )
    query = (
        select(*SNAPSHOT_COLUMNS)
        .order_by(
            severity,
            changed_at.desc().nulls_last(),
            instrument_state.c.evaluated_at.desc(),
            instrument_state.c.instrument_id,
        )
        .where(
            in_tenants(instrument_state.c.tenant, tenant, tenants),
            instrument_state.c.instrument_id.not_in(retired_ids()),
        )
        .limit(limit)
    )
    return [snapshot_from_row(tuple(row)) for row in connection.execute(query)]


def dead_letter_count(connection: Connection) -> int:
    """Readings (or whole messages) refused: the sum of the dead letters' counts."""
    query = select(func.coalesce(func.sum(dead_letters_table.c.count), 0))
    return int(connection.execute(query).scalar_one())


def dead_letters_by_reason(connection: Connection) -> dict[str, int]:
    reason = dead_letters_table.c.reason
    query = select(reason, func.sum(dead_letters_table.c.count)).group_by(reason).order_by(reason)
    return {name: int(total) for name, total in connection.execute(query)}


def recent_dead_letters(connection: Connection, limit: int = 20) -> list[DeadLetter]:
    query = (
        select(*(dead_letters_table.c[c] for c in DEAD_LETTER_COLUMNS))
        .order_by(dead_letters_table.c.received_at.desc(), dead_letters_table.c.id.desc())
        .limit(limit)
    )
    return [dead_letter_from_row(tuple(row)) for row in connection.execute(query)]


def alerts(
    connection: Connection, limit: int = 50, tenant: str | None = None
) -> list[StatusChange]:
    """Status changes, newest first (event time, then arrival)."""
    query = (
        select(*(alerts_table.c[c] for c in ALERT_COLUMNS))
        .order_by(alerts_table.c.ts.desc(), alerts_table.c.id.desc())
        .limit(limit)
    )
    if tenant is not None:
        query = query.where(alerts_table.c.tenant == tenant)
    return [change_from_row(tuple(row)) for row in connection.execute(query)]


def alert_count(connection: Connection) -> int:
    return int(connection.execute(select(func.count()).select_from(alerts_table)).scalar_one())


def registered_instruments(connection: Connection) -> int:
    """Instruments registered and not retired."""
    query = select(func.count()).select_from(instruments).where(instruments.c.retired_at.is_(None))
    return int(connection.execute(query).scalar_one())


def calibration_history(connection: Connection, instrument_id: str) -> CalibrationHistory:
    """Every stored revision of every certificate of ``instrument_id``, as the domain's history.

    Revisions come back with their amendments (who, when, why) and curves with their points, so
    ``history.audit_trail(certificate)`` is what was registered. Empty for an unknown instrument.
    """
    return calibration_histories(connection, instrument_id).get(instrument_id, CalibrationHistory())


def calibration_histories(
    connection: Connection, instrument_id: str | None = None
) -> dict[str, CalibrationHistory]:
    """:func:`calibration_history` of every instrument with a certificate (or of one), in two
    queries whatever the number of instruments."""
    point_query = select(calibration_curve_points).order_by(calibration_curve_points.c.point)
    query = select(calibrations).order_by(calibrations.c.calibrated_at, calibrations.c.revision)
    if instrument_id is not None:
        point_query = point_query.where(calibration_curve_points.c.instrument_id == instrument_id)
        query = query.where(calibrations.c.instrument_id == instrument_id)
    points: dict[tuple[str, str, int], list[tuple[float, float]]] = {}
    for row in connection.execute(point_query):
        points.setdefault((row.instrument_id, row.certificate_id, row.revision), []).append(
            (row.indication, row.correction)
        )
    records: dict[str, list[CalibrationRecord]] = {}
    for row in connection.execute(query):
        key = (row.instrument_id, row.certificate_id, row.revision)
        correction: Correction | CurveCorrection
        if row.correction_kind == CURVE:
            correction = CurveCorrection(tuple(points[key]))
        else:
            correction = Correction(row.correction_offset, row.correction_gain)
        amendment = (
            None
            if row.revision == 0
            else Amendment(
                row.certificate_id,
                row.revision,
                row.amended_at,
                row.amended_by,
                row.amendment_reason,
            )
        )
        records.setdefault(row.instrument_id, []).append(
            CalibrationRecord(
                instrument_id=row.instrument_id,
                certificate_id=row.certificate_id,
                calibrated_at=row.calibrated_at,
                correction=correction,
                expanded_uncertainty=row.expanded_uncertainty,
                coverage_factor=row.coverage_factor,
                interval_days=row.interval_days,
                amendment=amendment,
                as_found_error=row.as_found_error,
            )
        )
    return {key: CalibrationHistory(found) for key, found in records.items()}
