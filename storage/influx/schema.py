"""The InfluxDB schema of calstream's series (``docs/influxdb.md`` is the full reference).

Measurements, their tags (series identity) and fields::

    reading       tags tenant, site, instrument, measurand
                  fields value, corrected, seq (integer), status, certificate (strings);
                  with drift numbers: reference, residual, u_residual, ewma, cusum_high,
                  cusum_low, drift_rate [unit/day]
                  time: the reading's time
    health        tags tenant, site, instrument
                  fields status (string), severity (integer, 0 = worst), conditions, reasons
                  (strings), last_reading_at, days_to_due, days_to_predicted_oot and the
                  HEALTH_NUMBER_FIELDS (floats), HEALTH_TEXT_FIELDS (strings)
                  time: evaluated_at
    fleet_status  tags tenant, site
                  fields one integer per status (FLEET_STATUS_FIELDS) and total
                  time: the newest evaluated_at of the site's snapshots in the batch
    alert         tags tenant, site, instrument, status
                  fields previous (string), severity (integer), reasons (string) and the
                  health numbers and texts the change carries
                  time: the change's event time
    dead_letter   tags reason, tenant (when known)
                  fields count (integer), detail, topic, excerpt, instrument (strings),
                  seq (integer)
                  time: received_at (+ n ns for the n-th of a batch with the same key)

Every timestamp is in nanoseconds (``precision=ns``), converted exactly from epoch seconds, so
a re-delivered point has the same series and time and overwrites itself.
"""

from __future__ import annotations

from metrology.health import SEVERITY, Status

READING = "reading"
HEALTH = "health"
FLEET_STATUS = "fleet_status"
ALERT = "alert"
DEAD_LETTER = "dead_letter"

MEASUREMENTS = (READING, HEALTH, FLEET_STATUS, ALERT, DEAD_LETTER)

READING_TAGS = ("instrument", "measurand", "site", "tenant")
"""Sorted, as InfluxDB stores them (a sorted tag set saves the server a sort per line)."""
READING_DRIFT_FIELDS = (
    "reference", "residual", "u_residual", "ewma", "cusum_high", "cusum_low", "drift_rate",
)  # fmt: skip
READING_FIELDS = ("value", "corrected", "seq", "status", "certificate", *READING_DRIFT_FIELDS)

HEALTH_TAGS = ("instrument", "site", "tenant")
HEALTH_NUMBER_FIELDS = (
    "residual",
    "u_residual",
    "reference",
    "lower_limit",
    "upper_limit",
    "probability_of_conformity",
    "guard_band",
    "baseline_mean",
    "sigma",
    "ewma",
    "ewma_limit",
    "cusum_high",
    "cusum_low",
    "cusum_threshold",
    "shift_to_detect",
    "drift_rate",
    "drift_rate_u",
    "fit_points",
    "predicted_oot_at",
    "estimated_oot_at",
    "drift_since",
    "out_of_tolerance_since",
    "first_drift_at",
    "due_at",
)
"""Keys of ``HealthSnapshot.numbers`` written as float fields (times in epoch seconds)."""
HEALTH_TEXT_FIELDS = (
    "decision",
    "decision_rule",
    "prediction_note",
    "drift_detector",
    "certificate_id",
)
"""Keys of ``HealthSnapshot.numbers`` written as string fields."""

SECONDS_PER_DAY = 86_400.0

FLEET_STATUS_TAGS = ("site", "tenant")
FLEET_STATUS_FIELDS: dict[Status, str] = {s: s.value.lower() for s in Status}
"""Field of ``fleet_status`` counting the instruments whose latest status is the key."""
FLEET_STATUS_TOTAL = "total"

ALERT_TAGS = ("instrument", "site", "status", "tenant")
DEAD_LETTER_TAGS = ("reason", "tenant")

SEVERITY_OF: dict[Status, int] = {status: rank for rank, status in enumerate(SEVERITY)}
"""``severity`` field: the position in :data:`metrology.health.SEVERITY` (0 = most severe)."""
STATUS_OF_SEVERITY: dict[int, Status] = dict(enumerate(SEVERITY))
