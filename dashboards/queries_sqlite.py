"""SQL of the SQLite flavour, for Grafana's ``frser-sqlite-datasource`` on the embedded store.

Tables and views are the store's (``storage/schema.py``, ``docs/storage.md``). Times there are
REAL epoch seconds. Conventions every query keeps (the panels rely on them):

- a time series or event table names its time column ``time`` (epoch seconds; the plugin
  converts the columns listed in ``timeColumns``);
- every other time column is named ``..._at`` and carries epoch **milliseconds** (shown as
  dates by the panels);
- the time range is ``$__from`` / ``$__to`` (epoch milliseconds, replaced by Grafana and by the
  plugin). The plugin's ``$__timeFilter(column)`` is not used: it reads a REAL column with
  ``strftime('%s', column)``, which takes a number for a Julian day;
- ``$__unixEpochGroupSeconds(column, seconds)`` buckets times (the plugin's macro);
- multi-value variables are expanded with ``${var:sqlstring}`` (each value quoted, comma
  separated) inside ``IN (...)``; ``$instrument`` is single-valued.
"""

from __future__ import annotations

from dashboards.model import Query, ResultFormat
from dashboards.panels import STATUSES
from storage.schema import NO_DATA, STATUS_KEYS

DAY_S = 86_400


def scope(alias: str = "") -> str:
    """The tenant and site variables as a filter on ``alias.tenant`` and ``alias.site``."""
    prefix = f"{alias}." if alias else ""
    return f"{prefix}tenant IN (${{tenant:sqlstring}}) AND {prefix}site IN (${{site:sqlstring}})"


INSTRUMENT = "instrument_id = '${instrument}'"


def in_range(column: str) -> str:
    return f"{column} >= $__from / 1000.0 AND {column} < $__to / 1000.0"


def ms(column: str) -> str:
    return f"{column} * 1000.0"


def has_condition(*conditions: str) -> str:
    wanted = ", ".join(f"'{c}'" for c in conditions)
    return f"EXISTS (SELECT 1 FROM json_each(s.conditions) WHERE json_each.value IN ({wanted}))"


SEVERITY = (
    "CASE COALESCE(s.status, '"
    + NO_DATA
    + "') "
    + " ".join(f"WHEN '{status}' THEN {rank}" for rank, status in enumerate(STATUS_KEYS))
    + " END"
)
"""0 for the most severe status (``storage.STATUS_KEYS`` order, NO_DATA last)."""


def status_sums(status_column: str = "s.status") -> str:
    """One column per status counting the rows in it, plus ``total`` (instruments with a state)."""
    columns = [f"SUM({status_column} = '{status}') AS \"{status}\"" for status in STATUSES]
    columns.append(f'SUM({status_column} IS NULL) AS "{NO_DATA}"')
    columns.append(f"COUNT({status_column}) AS total")
    return ",\n       ".join(columns)


def _table(text: str) -> tuple[Query, ...]:
    return (Query(text.strip()),)


def _series(text: str) -> tuple[Query, ...]:
    return (Query(text.strip(), ResultFormat.TIME_SERIES),)


_LATEST_HEALTH = f"""
SELECT s.instrument_id AS instrument, s.tenant, s.site, s.status, {SEVERITY} AS severity,
       i.measurand, i.unit, s.residual, s.u_residual, s.drift_rate,
       s.probability_of_conformity,
       ROUND((s.due_at - s.evaluated_at) / {DAY_S}.0, 1) AS days_to_due,
       {ms("s.predicted_oot_at")} AS predicted_oot_at, {ms("s.due_at")} AS due_at,
       {ms("s.last_reading_at")} AS last_reading_at
FROM instrument_state AS s JOIN instruments AS i USING (instrument_id)
"""

_DUE_LIST = f"""
SELECT s.tenant, s.site, s.instrument_id AS instrument, s.status,
       json_extract(s.numbers, '$.certificate_id') AS certificate_id,
       (SELECT {ms("c.calibrated_at")} FROM calibrations AS c
        WHERE c.instrument_id = s.instrument_id
          AND c.certificate_id = json_extract(s.numbers, '$.certificate_id')
        ORDER BY c.in_force DESC, c.revision DESC LIMIT 1) AS calibrated_at,
       {ms("s.due_at")} AS due_at,
       ROUND((s.due_at - s.evaluated_at) / {DAY_S}.0, 1) AS days_to_due
FROM instrument_state AS s
"""
"""Certificate in force and due date; a certificate's latest revision (amendments) is read."""

QUERIES: dict[str, tuple[Query, ...]] = {
    # --- fleet health -------------------------------------------------------------------------
    "fleet.status_counts": _table(f"""
SELECT {status_sums()}
FROM instruments AS i LEFT JOIN instrument_state AS s USING (instrument_id)
WHERE {scope("i")}
"""),
    "fleet.by_site": _table(f"""
SELECT i.tenant, i.site, {status_sums()}
FROM instruments AS i LEFT JOIN instrument_state AS s USING (instrument_id)
WHERE {scope("i")}
GROUP BY i.tenant, i.site
ORDER BY i.tenant, i.site
"""),
    "fleet.instruments": _table(f"""
{_LATEST_HEALTH.strip()}
WHERE {scope("s")}
ORDER BY severity, s.instrument_id
"""),
    "fleet.calibration_due": _table(f"""
{_DUE_LIST.strip()}
WHERE {scope("s")}
  AND {has_condition("CAL_DUE_SOON", "CAL_OVERDUE")}
ORDER BY s.due_at, s.instrument_id
"""),
    "fleet.offline": _table(f"""
SELECT s.instrument_id AS instrument, s.tenant, s.site, i.gateway, s.status,
       {ms("s.last_reading_at")} AS last_reading_at,
       ROUND((s.evaluated_at - s.last_reading_at) / 3600.0, 1) AS hours_silent,
       i.reporting_period_s
FROM instrument_state AS s JOIN instruments AS i USING (instrument_id)
WHERE {scope("s")} AND {has_condition("OFFLINE")}
ORDER BY s.last_reading_at, s.instrument_id
"""),
    "fleet.alerts_over_time": _series(f"""
SELECT $__unixEpochGroupSeconds(ts, 3600) AS time, status, COUNT(*) AS changes
FROM alerts
WHERE {scope()} AND {in_range("ts")}
GROUP BY 1, status
ORDER BY 1
"""),
    "fleet.recent_alerts": _table(f"""
SELECT ts AS time, instrument_id AS instrument, tenant, site, previous, status, reasons
FROM alerts
WHERE {scope()} AND {in_range("ts")}
ORDER BY ts DESC, instrument_id
LIMIT 200
"""),
    "fleet.dead_letters": _table(f"""
SELECT reason, SUM(count) AS readings, COUNT(*) AS messages,
       {ms("MAX(received_at)")} AS last_received_at
FROM dead_letters
WHERE tenant IN (${{tenant:sqlstring}}) AND {in_range("received_at")}
GROUP BY reason
ORDER BY readings DESC, reason
"""),
    # --- instrument detail --------------------------------------------------------------------
    "instrument.status": _table(f"SELECT status FROM instrument_state WHERE {INSTRUMENT}"),
    "instrument.conformity": _table(f"""
SELECT probability_of_conformity FROM instrument_state WHERE {INSTRUMENT}
"""),
    "instrument.drift_rate": _table(f"""
SELECT drift_rate FROM instrument_state WHERE {INSTRUMENT}
"""),
    "instrument.days_to_oot": _table(f"""
SELECT ROUND((predicted_oot_at - evaluated_at) / {DAY_S}.0, 1) AS days_to_predicted_oot
FROM instrument_state WHERE {INSTRUMENT}
"""),
    "instrument.days_to_due": _table(f"""
SELECT ROUND((due_at - evaluated_at) / {DAY_S}.0, 1) AS days_to_due
FROM instrument_state WHERE {INSTRUMENT}
"""),
    "instrument.values": _series(f"""
SELECT ts AS time, value AS raw, corrected
FROM readings
WHERE {INSTRUMENT} AND {in_range("ts")}
ORDER BY ts
"""),
    "instrument.error": _series(f"""
SELECT r.ts AS time, r.residual AS error,
       r.residual + 2 * r.u_residual AS "error + U",
       r.residual - 2 * r.u_residual AS "error - U",
       i.tolerance_upper + i.tolerance_relative * ABS(r.reference) AS upper_limit,
       i.tolerance_lower - i.tolerance_relative * ABS(r.reference) AS lower_limit
FROM residuals AS r JOIN instruments AS i USING (instrument_id)
WHERE r.{INSTRUMENT} AND {in_range("r.ts")} AND r.residual IS NOT NULL
ORDER BY r.ts
"""),
    "instrument.detectors": _series(f"""
SELECT ts AS time, ewma, cusum_high, cusum_low
FROM residuals
WHERE {INSTRUMENT} AND {in_range("ts")} AND ewma IS NOT NULL
ORDER BY ts
"""),
    "instrument.drift_rate_series": _series(f"""
SELECT ts AS time, drift_rate
FROM residuals
WHERE {INSTRUMENT} AND {in_range("ts")} AND drift_rate IS NOT NULL
ORDER BY ts
"""),
    "instrument.prediction": _table(f"""
SELECT drift_rate, json_extract(numbers, '$.drift_rate_u') AS drift_rate_u,
       json_extract(numbers, '$.fit_points') AS fit_points,
       {ms("first_drift_at")} AS first_drift_at, {ms("predicted_oot_at")} AS predicted_oot_at,
       {ms("due_at")} AS due_at,
       ROUND((predicted_oot_at - evaluated_at) / {DAY_S}.0, 1) AS days_to_predicted_oot,
       ROUND((due_at - evaluated_at) / {DAY_S}.0, 1) AS days_to_due,
       CASE WHEN predicted_oot_at IS NULL THEN 'no prediction'
            WHEN predicted_oot_at < due_at THEN 'before the due date'
            ELSE 'after the due date' END AS predicted_against_due,
       json_extract(numbers, '$.prediction_note') AS prediction_note
FROM instrument_state WHERE {INSTRUMENT}
"""),
    "instrument.conformity_series": _series(f"""
SELECT ts AS time, json_extract(numbers, '$.probability_of_conformity') AS probability_of_conformity
FROM alerts
WHERE {INSTRUMENT} AND {in_range("ts")}
  AND json_extract(numbers, '$.probability_of_conformity') IS NOT NULL
ORDER BY ts
"""),
    "instrument.decisions": _table(f"""
SELECT ts AS time, previous, status, json_extract(numbers, '$.decision') AS decision,
       json_extract(numbers, '$.decision_rule') AS decision_rule,
       json_extract(numbers, '$.probability_of_conformity') AS probability_of_conformity,
       reasons
FROM alerts
WHERE {INSTRUMENT} AND {in_range("ts")}
ORDER BY ts DESC
LIMIT 200
"""),
    "instrument.certificate": _table(f"""
{_DUE_LIST.strip()}
WHERE s.{INSTRUMENT}
"""),
    # --- calibration provider -----------------------------------------------------------------
    "provider.status_counts": _table(f"""
SELECT {status_sums()}
FROM instruments AS i LEFT JOIN instrument_state AS s USING (instrument_id)
WHERE {scope("i")}
"""),
    "provider.client_fleets": _table(f"""
SELECT i.tenant, t.name, {status_sums()}
FROM instruments AS i
JOIN tenants AS t ON t.tenant_id = i.tenant
LEFT JOIN instrument_state AS s USING (instrument_id)
WHERE {scope("i")}
GROUP BY i.tenant, t.name
ORDER BY i.tenant
"""),
    "provider.due_list": _table(f"""
{_DUE_LIST.strip()}
WHERE {scope("s")}
  AND {has_condition("CAL_DUE_SOON", "CAL_OVERDUE")}
ORDER BY s.due_at, s.instrument_id
"""),
    "provider.worst": _table(f"""
{_LATEST_HEALTH.strip()}
WHERE {scope("s")}
ORDER BY severity, s.probability_of_conformity, s.instrument_id
LIMIT 20
"""),
    "provider.changes_over_time": _series(f"""
SELECT $__unixEpochGroupSeconds(ts, {DAY_S}) AS time, tenant, COUNT(*) AS changes
FROM alerts
WHERE {scope()} AND {in_range("ts")}
GROUP BY 1, tenant
ORDER BY 1
"""),
}

VARIABLES: dict[str, str] = {
    "fleet.tenant": "SELECT DISTINCT tenant FROM instruments ORDER BY tenant",
    "fleet.site": (
        "SELECT DISTINCT site FROM instruments WHERE tenant IN (${tenant:sqlstring}) ORDER BY site"
    ),
    "instrument.tenant": "SELECT DISTINCT tenant FROM instruments ORDER BY tenant",
    "instrument.site": (
        "SELECT DISTINCT site FROM instruments WHERE tenant IN (${tenant:sqlstring}) ORDER BY site"
    ),
    "instrument.instrument": (
        "SELECT instrument_id FROM instruments WHERE tenant IN (${tenant:sqlstring}) "
        "AND site IN (${site:sqlstring}) ORDER BY instrument_id"
    ),
    # Clients of every calibration provider in the store; one provider per Grafana organisation
    # (its own datasource) keeps providers apart (docs/deploy.md).
    "provider.tenant": "SELECT DISTINCT client FROM tenant_clients ORDER BY client",
    "provider.site": (
        "SELECT DISTINCT site FROM instruments WHERE tenant IN (${tenant:sqlstring}) ORDER BY site"
    ),
}
