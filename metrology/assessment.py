"""What processing a reading yields: the assessment stored beside it, and status changes.

These are the values the stream processors hand to storage and alerting; every status comes
with the numbers behind it (DESIGN.md, "Instrument health").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from metrology.health import Status


class Assessment(NamedTuple):
    """The derived values of one reading (a named tuple: one is built per reading).

    ``corrected`` applies the calibration valid at ``ts`` (``certificate_id``); ``residual`` is the
    error of indication ``e = corrected - reference`` with standard uncertainty ``u_residual``
    (``None`` when no reference was available); detector statistics are those after this reading.
    ``drift_rate`` is the fitted slope of the error, in unit per day.
    """

    instrument_id: str
    ts: float
    seq: int
    corrected: float
    certificate_id: str | None
    reference: float | None
    residual: float | None
    u_residual: float | None
    ewma: float | None
    cusum_high: float | None
    cusum_low: float | None
    drift_rate: float | None
    status: Status


SNAPSHOT_NUMBER_KEYS: tuple[str, ...] = (
    "residual", "u_residual", "reference", "lower_limit", "upper_limit",
    "probability_of_conformity", "guard_band",
    "baseline_mean", "sigma", "ewma", "ewma_limit", "cusum_high", "cusum_low", "cusum_threshold",
    "shift_to_detect",
    "drift_rate", "drift_rate_u", "fit_points", "drift_rate_since_calibration",
    "in_use_lower_limit", "in_use_upper_limit", "predicted_oot_at", "estimated_oot_at",
    "estimated_oot_u_days", "drift_onset_at",
    "drift_since", "out_of_tolerance_since", "first_drift_at",
    "due_at", "interval_days", "hours_in_use", "recommended_interval_days",
    "staircase_interval_days",
)  # fmt: skip
"""Keys of :attr:`HealthSnapshot.numbers` that hold numbers (times in epoch seconds) or None."""
SNAPSHOT_TEXT_KEYS: tuple[str, ...] = (
    "decision", "decision_rule", "fit_basis", "prediction_note", "estimate_note",
    "drift_detector",
    "certificate_id", "interval_method", "interval_reason", "staircase_reason",
)  # fmt: skip
"""Keys of :attr:`HealthSnapshot.numbers` that hold text (the rule, the detector, the reasons
behind a date or an interval) or None. Stores and dashboards rely on these two lists."""


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """The latest health of one instrument, with every number behind its status."""

    instrument_id: str
    tenant: str
    site: str
    status: Status
    conditions: tuple[Status, ...]
    reasons: tuple[str, ...]
    evaluated_at: float
    last_reading_at: float | None
    numbers: dict[str, float | str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StatusChange:
    """An alert event: an instrument's status changed at ``ts`` (event time)."""

    instrument_id: str
    tenant: str
    site: str
    ts: float
    previous: Status | None
    status: Status
    reasons: tuple[str, ...]
    numbers: dict[str, float | str | None] = field(default_factory=dict)
