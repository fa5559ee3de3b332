"""The registry tables: tenants, sites, instruments and calibrations of a :class:`Fleet`.

Kept apart from the hot path so that it can move to SQLAlchemy Core (SQLite and PostgreSQL) on its
own. Registration is an upsert: registering the same fleet twice changes nothing, an amended
instrument or certificate replaces its row, and nothing is deleted (readings and alerts keep
referring to instruments that leave the fleet).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from metrology.calibration import Correction
from metrology.fleet import Fleet
from storage.errors import StorageError

_UPSERT_TENANT = """
INSERT INTO tenants (tenant_id, name, kind) VALUES (?, ?, ?)
ON CONFLICT (tenant_id) DO UPDATE SET name = excluded.name, kind = excluded.kind
"""
_INSERT_CLIENT = "INSERT OR IGNORE INTO tenant_clients (provider, client) VALUES (?, ?)"
_UPSERT_SITE = """
INSERT INTO sites (tenant, site_id, name) VALUES (?, ?, ?)
ON CONFLICT (tenant, site_id) DO UPDATE SET name = excluded.name
"""
_INSTRUMENT_COLUMNS = (
    "instrument_id", "tenant", "site", "gateway", "measurand", "unit", "tolerance_lower",
    "tolerance_upper", "tolerance_relative", "reporting_period_s", "reference_kind", "peer_group",
    "reference_instrument", "range_low", "range_high", "description",
)  # fmt: skip
_CALIBRATION_COLUMNS = (
    "instrument_id", "certificate_id", "calibrated_at", "correction_offset", "correction_gain",
    "expanded_uncertainty", "coverage_factor", "standard_uncertainty", "interval_days", "due_at",
)  # fmt: skip


def _upsert(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


_UPSERT_INSTRUMENT = _upsert("instruments", _INSTRUMENT_COLUMNS, ("instrument_id",))
_UPSERT_CALIBRATION = _upsert(
    "calibrations", _CALIBRATION_COLUMNS, ("instrument_id", "certificate_id")
)


def instrument_rows(fleet: Fleet) -> list[tuple[Any, ...]]:
    rows = []
    for spec in fleet.instruments.values():
        measuring_range = fleet.ranges[spec.instrument_id]
        rows.append(
            (
                spec.instrument_id,
                spec.tenant,
                spec.site,
                spec.gateway,
                spec.measurand,
                spec.unit,
                spec.tolerance.lower,
                spec.tolerance.upper,
                spec.tolerance.relative,
                spec.reporting_period_s,
                spec.reference.kind.value,
                spec.reference.peer_group,
                spec.reference.reference_instrument,
                measuring_range.low,
                measuring_range.high,
                spec.description,
            )
        )
    return rows


def calibration_rows(fleet: Fleet) -> list[tuple[Any, ...]]:
    rows = []
    for history in fleet.calibrations.values():
        for record in history.records:
            correction = record.correction
            if not isinstance(correction, Correction):
                # The registry has columns for a gain and offset only (not yet for curves).
                raise StorageError(
                    f"certificate {record.certificate_id} of {record.instrument_id}: cannot "
                    f"register a {type(correction).__name__} (gain and offset corrections only)"
                )
            rows.append(
                (
                    record.instrument_id,
                    record.certificate_id,
                    record.calibrated_at,
                    correction.offset,
                    correction.gain,
                    record.expanded_uncertainty,
                    record.coverage_factor,
                    record.standard_uncertainty,
                    record.interval_days,
                    record.due_at,
                )
            )
    return rows


def register_fleet(conn: sqlite3.Connection, fleet: Fleet) -> None:
    """Upsert every tenant, site, instrument and calibration of ``fleet`` (caller holds the txn)."""
    conn.executemany(
        _UPSERT_TENANT, [(t.tenant_id, t.name, t.kind.value) for t in fleet.tenants.values()]
    )
    conn.executemany(
        _INSERT_CLIENT,
        [(t.tenant_id, client) for t in fleet.tenants.values() for client in t.clients],
    )
    conn.executemany(_UPSERT_SITE, [(s.tenant, s.site_id, s.name) for s in fleet.sites.values()])
    conn.executemany(_UPSERT_INSTRUMENT, instrument_rows(fleet))
    conn.executemany(_UPSERT_CALIBRATION, calibration_rows(fleet))
