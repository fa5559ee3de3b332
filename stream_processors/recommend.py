"""Calibration-interval recommendations for an instrument's snapshot, with their reasons.

Two methods of ILAC-G24:2022 / OIML D 10:2022 (:mod:`metrology.intervals`), each stated with
the numbers behind it and never applied automatically (changing an interval is the quality
manager's decision, ISO 10012 §7.1.2):

- **drift-based** (Method 2 style): the days after the calibration at which the prediction band
  of the live drift fit (the whole period since the calibration) reaches a tolerance limit;
- **staircase** (Method 1): from the as-found error the certificate in force states, against the
  MPE, under the staircase policy of the instrument, its tenant, or the default.

Hours in use (Method 3) are counted by :func:`stream_processors.step.step` from the telemetry.
"""

from __future__ import annotations

import math

from metrology.calibration import CalibrationRecord
from metrology.instrument import InstrumentSpec
from metrology.intervals import (
    IntervalRecommendation,
    drift_based_interval,
    staircase_interval,
)
from stream_processors.policy import ProcessingPolicy
from stream_processors.state import InstrumentState

Numbers = dict[str, float | str | None]


def interval_numbers(
    state: InstrumentState,
    spec: InstrumentSpec,
    record: CalibrationRecord | None,
    policy: ProcessingPolicy,
) -> Numbers:
    """``hours_in_use``, the current interval and both recommendations with their reasons."""
    staircase_policy = spec.interval_policy or policy.interval_policy
    numbers: Numbers = {
        "hours_in_use": state.hours_in_use,
        "interval_days": None if record is None else record.interval_days,
        "recommended_interval_days": None,
        "interval_method": None,
        "interval_reason": None,
        "staircase_interval_days": None,
        "staircase_reason": None,
    }
    if record is None:
        numbers["interval_reason"] = "no calibration in force"
        return numbers
    judgement = state.judgement
    if judgement.residual is None or state.tracking.certificate_id != record.certificate_id:
        numbers["interval_reason"] = "no residuals in this calibration period yet"
    else:
        drift = drift_based_interval(
            state.tracking.fit,
            judgement.lower,
            judgement.upper,
            record.standard_uncertainty,
            policy.prediction_confidence,
            min_points=policy.prediction_min_points,
            significance=policy.prediction_significance,
            min_days=staircase_policy.min_days,
            max_days=staircase_policy.max_days,
        )
        numbers["interval_method"] = drift.method.value
        numbers["interval_reason"] = drift.reason
        if isinstance(drift, IntervalRecommendation):
            numbers["recommended_interval_days"] = drift.interval_days
    mpe = spec.tolerance.half_width
    if record.as_found_error is None:
        numbers["staircase_reason"] = "the certificate states no as-found error"
    elif not math.isfinite(mpe) or mpe <= 0.0:
        numbers["staircase_reason"] = "no two-sided maximum permissible error"
    else:
        step_result = staircase_interval(
            record.interval_days, record.as_found_error, mpe, staircase_policy
        )
        numbers["staircase_interval_days"] = step_result.interval_days
        numbers["staircase_reason"] = step_result.reason
    return numbers
