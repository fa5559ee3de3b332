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

from metrology.assessment import SNAPSHOT_NUMBER_KEYS, SNAPSHOT_TEXT_KEYS
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
HEALTH_NUMBER_FIELDS = SNAPSHOT_NUMBER_KEYS
"""Keys of ``HealthSnapshot.numbers`` written as float fields (times in epoch seconds)."""
HEALTH_TEXT_FIELDS = SNAPSHOT_TEXT_KEYS
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
