"""InfluxQL of the InfluxDB flavour, on the series ``storage/influx`` writes.

Measurements, tags and fields are those of ``docs/influxdb.md`` (names imported from
``storage.influx.schema``). Conventions, the same as the SQLite flavour's:

- time series come back in Grafana's ``time_series`` format, tables in ``table`` format (tags of
  a ``GROUP BY`` become columns);
- every time column other than ``time`` is named ``..._at`` and carries epoch **milliseconds**
  (the ``health`` fields are epoch seconds: multiplied by 1000);
- ``$timeFilter`` is the dashboard's range (Grafana writes ``time >= ...ms and time <= ...ms``);
- multi-value variables are matched with ``=~ /^${var:regex}$/``; ``$instrument`` is single.

Current state ("latest health") is the newest ``health`` point of each instrument, selected
whole with ``GROUP BY "tenant", "site", "instrument" ORDER BY time DESC LIMIT 1`` (per series),
so every column of a row belongs to the same snapshot; ``last()`` per field would mix
snapshots when a field (a prediction, say) is absent from the newest one.
"""

from __future__ import annotations

from dashboards.model import Query, ResultFormat
from dashboards.panels import STATUSES
from storage.influx.schema import (
    ALERT,
    DEAD_LETTER,
    FLEET_STATUS,
    FLEET_STATUS_FIELDS,
    FLEET_STATUS_TOTAL,
    HEALTH,
    READING,
)

SCOPE = '"tenant" =~ /^${tenant:regex}$/ AND "site" =~ /^${site:regex}$/'
INSTRUMENT = "\"instrument\" = '${instrument}'"
PER_INSTRUMENT = 'GROUP BY "tenant", "site", "instrument"'
NEWEST = "ORDER BY time DESC LIMIT 1"

_FIELD_OF_STATUS = {status.value: field for status, field in FLEET_STATUS_FIELDS.items()}


def ms(field: str) -> str:
    """An epoch-seconds field as epoch milliseconds, keeping its name."""
    return f'"{field}" * 1000 AS "{field}"'


def _fields(*names: str) -> str:
    return ", ".join(f'"{name}"' for name in names)


def _latest_counts() -> str:
    """The newest status counts of every (tenant, site) selected."""
    lasts = [f'last("{_FIELD_OF_STATUS[s]}") AS "{s}"' for s in STATUSES]
    lasts.append(f'last("{FLEET_STATUS_TOTAL}") AS "total"')
    return (
        f'SELECT {", ".join(lasts)} FROM "{FLEET_STATUS}" WHERE {SCOPE} GROUP BY "tenant", "site"'
    )


def _sum_counts() -> str:
    return ", ".join(f'sum("{s}") AS "{s}"' for s in (*STATUSES, "total"))


def _table(text: str) -> tuple[Query, ...]:
    return (Query(" ".join(text.split())),)


def _series(text: str, alias: str | None = None) -> tuple[Query, ...]:
    return (Query(" ".join(text.split()), ResultFormat.TIME_SERIES, alias),)


_LATEST_HEALTH = f"""
SELECT {
    _fields(
        "status",
        "severity",
        "probability_of_conformity",
        "drift_rate",
        "residual",
        "u_residual",
        "days_to_due",
    )
},
       {ms("predicted_oot_at")}, {ms("due_at")}, {ms("last_reading_at")}
FROM "{HEALTH}" WHERE {SCOPE} {PER_INSTRUMENT} {NEWEST}
"""


def _with_condition(pattern: str, *fields: str) -> str:
    """Instruments whose newest snapshot holds a condition matching ``pattern``."""
    inner = (
        f"SELECT {_fields('status', 'conditions', 'certificate_id', 'days_to_due')}, "
        f"{ms('due_at')}, {ms('last_reading_at')} "
        f'FROM "{HEALTH}" WHERE {SCOPE} {PER_INSTRUMENT} {NEWEST}'
    )
    return (
        f"SELECT {_fields(*fields)} FROM ({inner}) "
        f'WHERE "conditions" =~ /{pattern}/ {PER_INSTRUMENT} ORDER BY time DESC'
    )


def _newest_of_instrument(*columns: str) -> str:
    # "status" is always present in a snapshot: selecting it keeps the newest point even when
    # the other fields are absent from it (InfluxQL skips rows whose selected fields are all
    # null), so a prediction that has gone away is not shown from an older snapshot.
    return f'SELECT {", ".join(columns)}, "status" FROM "{HEALTH}" WHERE {INSTRUMENT} {NEWEST}'


QUERIES: dict[str, tuple[Query, ...]] = {
    # --- fleet health -------------------------------------------------------------------------
    "fleet.status_counts": _table(f"SELECT {_sum_counts()} FROM ({_latest_counts()})"),
    "fleet.by_site": _table(_latest_counts()),
    "fleet.instruments": _table(_LATEST_HEALTH),
    "fleet.calibration_due": _table(
        _with_condition(
            "CAL_DUE_SOON|CAL_OVERDUE", "status", "certificate_id", "due_at", "days_to_due"
        )
    ),
    "fleet.offline": _table(_with_condition("OFFLINE", "status", "last_reading_at")),
    "fleet.alerts_over_time": _series(
        f'SELECT count("severity") AS "changes" FROM "{ALERT}" WHERE {SCOPE} AND $timeFilter '
        'GROUP BY time(1h), "status" fill(none)',
        alias="$tag_status",
    ),
    "fleet.recent_alerts": _table(
        f"SELECT {_fields('tenant', 'site', 'instrument', 'previous', 'status', 'reasons')} "
        f'FROM "{ALERT}" WHERE {SCOPE} AND $timeFilter ORDER BY time DESC LIMIT 200'
    ),
    "fleet.dead_letters": _table(
        f'SELECT sum("count") AS "readings", count("count") AS "messages" FROM "{DEAD_LETTER}" '
        'WHERE "tenant" =~ /^${tenant:regex}$/ AND $timeFilter GROUP BY "reason"'
    ),
    # --- instrument detail --------------------------------------------------------------------
    "instrument.status": _table(f'SELECT "status" FROM "{HEALTH}" WHERE {INSTRUMENT} {NEWEST}'),
    "instrument.conformity": _table(_newest_of_instrument('"probability_of_conformity"')),
    "instrument.drift_rate": _table(_newest_of_instrument('"drift_rate"')),
    "instrument.days_to_oot": _table(_newest_of_instrument('"days_to_predicted_oot"')),
    "instrument.days_to_due": _table(_newest_of_instrument('"days_to_due"')),
    "instrument.values": _series(
        f'SELECT "value" AS "raw", "corrected" FROM "{READING}" WHERE {INSTRUMENT} AND $timeFilter'
    ),
    "instrument.error": (
        *_series(
            f'SELECT "residual" AS "error", "residual" + 2 * "u_residual" AS "error + U", '
            f'"residual" - 2 * "u_residual" AS "error - U" FROM "{READING}" '
            f"WHERE {INSTRUMENT} AND $timeFilter"
        ),
        *_series(
            f'SELECT "upper_limit", "lower_limit" FROM "{HEALTH}" '
            f"WHERE {INSTRUMENT} AND $timeFilter"
        ),
    ),
    "instrument.detectors": _series(
        f'SELECT {_fields("ewma", "cusum_high", "cusum_low")} FROM "{READING}" '
        f"WHERE {INSTRUMENT} AND $timeFilter"
    ),
    "instrument.drift_rate_series": _series(
        f'SELECT "drift_rate" FROM "{READING}" WHERE {INSTRUMENT} AND $timeFilter'
    ),
    "instrument.prediction": _table(
        _newest_of_instrument(
            _fields("drift_rate", "drift_rate_u", "fit_points"),
            ms("first_drift_at"),
            ms("predicted_oot_at"),
            ms("due_at"),
            _fields("days_to_predicted_oot", "days_to_due", "prediction_note"),
        )
    ),
    "instrument.conformity_series": _series(
        f'SELECT "probability_of_conformity" FROM "{HEALTH}" WHERE {INSTRUMENT} AND $timeFilter'
    ),
    "instrument.decisions": _table(
        f"SELECT {_fields('previous', 'status', 'decision', 'decision_rule')}, "
        f'{_fields("probability_of_conformity", "reasons")} FROM "{ALERT}" '
        f"WHERE {INSTRUMENT} AND $timeFilter ORDER BY time DESC LIMIT 200"
    ),
    "instrument.certificate": _table(
        _newest_of_instrument(_fields("certificate_id", "days_to_due"), ms("due_at"))
    ),
    # --- calibration provider -----------------------------------------------------------------
    "provider.status_counts": _table(f"SELECT {_sum_counts()} FROM ({_latest_counts()})"),
    "provider.client_fleets": _table(
        f'SELECT {_sum_counts()} FROM ({_latest_counts()}) GROUP BY "tenant"'
    ),
    "provider.due_list": _table(
        _with_condition(
            "CAL_DUE_SOON|CAL_OVERDUE", "status", "certificate_id", "due_at", "days_to_due"
        )
    ),
    "provider.worst": _table(_LATEST_HEALTH),
    "provider.changes_over_time": _series(
        f'SELECT count("severity") AS "changes" FROM "{ALERT}" WHERE {SCOPE} AND $timeFilter '
        'GROUP BY time(1d), "tenant" fill(none)',
        alias="$tag_tenant",
    ),
}

_TENANTS = f'SHOW TAG VALUES FROM "{HEALTH}" WITH KEY = "tenant"'
_SITES = (
    f'SHOW TAG VALUES FROM "{HEALTH}" WITH KEY = "site" WHERE "tenant" =~ /^${{tenant:regex}}$/'
)

VARIABLES: dict[str, str] = {
    "fleet.tenant": _TENANTS,
    "fleet.site": _SITES,
    "instrument.tenant": _TENANTS,
    "instrument.site": _SITES,
    "instrument.instrument": (
        f'SHOW TAG VALUES FROM "{HEALTH}" WITH KEY = "instrument" WHERE {SCOPE}'
    ),
    # A provider reads its clients' series through its own datasource (one Grafana
    # organisation per provider, docs/deploy.md): every tenant it can see is a client.
    "provider.tenant": _TENANTS,
    "provider.site": _SITES,
}
