"""Read queries over the embedded store (CLI ``calstream status``, demo summary, tests).

Every query that takes ``tenant`` is scoped by it in SQL: a tenant-scoped call never returns
another tenant's rows. Instruments are counted over the registry *and* the latest-state table,
so an instrument registered but never heard from shows up as ``NO_DATA``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from metrology.assessment import HealthSnapshot, StatusChange
from metrology.health import SEVERITY
from metrology.wire import DeadLetter
from storage.rows import (
    ALERT_COLUMNS,
    DEAD_LETTER_COLUMNS,
    change_from_row,
    dead_letter_from_row,
    snapshot_from_row,
)

NO_DATA = "NO_DATA"
"""Status key of instruments that are registered but have no stored state yet."""

STATUS_KEYS: tuple[str, ...] = (*(s.value for s in SEVERITY), NO_DATA)
"""Keys of the status counts, most severe first; every key is present (zero when none)."""

_SNAPSHOT_SELECT = (
    "SELECT instrument_id, tenant, site, status, conditions, reasons, evaluated_at, "
    "last_reading_at, numbers FROM instrument_state"
)
_SEVERITY_RANK_SQL = (
    "CASE status "
    + " ".join(f"WHEN '{s.value}' THEN {rank}" for rank, s in enumerate(SEVERITY))
    + f" ELSE {len(SEVERITY)} END"
)
# Registry and state together; the registry's tenant and site win where both are known.
_KNOWN_INSTRUMENTS = """
WITH known (instrument_id) AS (
    SELECT instrument_id FROM instruments UNION SELECT instrument_id FROM instrument_state
)
SELECT COALESCE(r.tenant, s.tenant) AS tenant, COALESCE(r.site, s.site) AS site,
       COALESCE(s.status, 'NO_DATA') AS status
FROM known k
LEFT JOIN instruments r ON r.instrument_id = k.instrument_id
LEFT JOIN instrument_state s ON s.instrument_id = k.instrument_id
"""


def _tenant_clause(tenant: str | None, column: str = "tenant") -> tuple[str, tuple[Any, ...]]:
    return ("", ()) if tenant is None else (f" WHERE {column} = ?", (tenant,))


def _zero_counts() -> dict[str, int]:
    return dict.fromkeys(STATUS_KEYS, 0)


def snapshots(conn: sqlite3.Connection, tenant: str | None = None) -> list[HealthSnapshot]:
    where, params = _tenant_clause(tenant)
    rows = conn.execute(f"{_SNAPSHOT_SELECT}{where} ORDER BY instrument_id", params)
    return [snapshot_from_row(row) for row in rows]


def counts_by_status(conn: sqlite3.Connection, tenant: str | None = None) -> dict[str, int]:
    where, params = _tenant_clause(tenant)
    counts = _zero_counts()
    sql = f"SELECT status, COUNT(*) FROM ({_KNOWN_INSTRUMENTS}){where} GROUP BY status"
    for status, count in conn.execute(sql, params):
        counts[status] = counts.get(status, 0) + count
    return counts


def counts_by_site(conn: sqlite3.Connection) -> dict[tuple[str, str], dict[str, int]]:
    sql = (
        f"SELECT tenant, site, status, COUNT(*) FROM ({_KNOWN_INSTRUMENTS}) "
        "GROUP BY tenant, site, status ORDER BY tenant, site"
    )
    result: dict[tuple[str, str], dict[str, int]] = {}
    for tenant, site, status, count in conn.execute(sql):
        result.setdefault((tenant, site), _zero_counts())[status] = count
    return result


def worst_instruments(
    conn: sqlite3.Connection, limit: int = 10, tenant: str | None = None
) -> list[HealthSnapshot]:
    """Most severe status first (:data:`metrology.health.SEVERITY`); then the most recent change."""
    where, params = _tenant_clause(tenant, "s.tenant")
    sql = (
        f"SELECT s.instrument_id, s.tenant, s.site, s.status, s.conditions, s.reasons, "
        f"s.evaluated_at, s.last_reading_at, s.numbers, {_SEVERITY_RANK_SQL} AS severity, "
        "(SELECT MAX(a.ts) FROM alerts a WHERE a.instrument_id = s.instrument_id) AS changed_at "
        f"FROM instrument_state s{where} "
        "ORDER BY severity, changed_at DESC NULLS LAST, s.evaluated_at DESC, s.instrument_id "
        "LIMIT ?"
    )
    return [snapshot_from_row(row) for row in conn.execute(sql, (*params, limit))]


def reading_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0])


def dead_letter_count(conn: sqlite3.Connection) -> int:
    """Readings (or whole messages) refused: the sum of the dead letters' counts."""
    return int(conn.execute("SELECT COALESCE(SUM(count), 0) FROM dead_letters").fetchone()[0])


def dead_letters_by_reason(conn: sqlite3.Connection) -> dict[str, int]:
    sql = "SELECT reason, SUM(count) FROM dead_letters GROUP BY reason ORDER BY reason"
    return {reason: int(total) for reason, total in conn.execute(sql)}


def recent_dead_letters(conn: sqlite3.Connection, limit: int = 20) -> list[DeadLetter]:
    sql = (
        f"SELECT {', '.join(DEAD_LETTER_COLUMNS)} FROM dead_letters "
        "ORDER BY received_at DESC, id DESC LIMIT ?"
    )
    return [dead_letter_from_row(row) for row in conn.execute(sql, (limit,))]


def alerts(
    conn: sqlite3.Connection, limit: int = 50, tenant: str | None = None
) -> list[StatusChange]:
    """Status changes, newest first (event time, then arrival)."""
    where, params = _tenant_clause(tenant)
    sql = f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts{where} ORDER BY ts DESC, id DESC LIMIT ?"
    return [change_from_row(row) for row in conn.execute(sql, (*params, limit))]


def alert_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])


def registered_instruments(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM instruments").fetchone()[0])
