"""The out-of-tolerance dates of an instrument: the predicted date and the best estimate.

Two dates answer "when will this instrument leave its tolerance?", each with the reason it is
what it is (or why there is none):

- the *predicted* date, when the prediction band of the drift fit first reaches a tolerance
  limit (Castrup, "Calibration Intervals from Variables Data"; :mod:`metrology.drift`): the
  early, conservative date AT_RISK is judged on;
- the *best estimate*, where the two-phase fit's predicted error reaches a limit, with its
  standard uncertainty (:mod:`metrology.onset`), given once it is precise enough.

Both look at the drift since its change point once a detector signalled (Montgomery,
Introduction to SQC §9.1.3), and at the limits of the values measured in use
(:mod:`metrology.in_use`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from metrology.drift import DriftFit, predicted_out_of_tolerance
from metrology.in_use import InUseLimits, tighter
from metrology.onset import DriftRecord, fit_onset
from metrology.timebase import SECONDS_PER_DAY
from stream_processors.policy import ProcessingPolicy
from stream_processors.state import DriftTracking, Judgement

__all__ = [
    "Estimate",
    "at_risk",
    "best_estimate",
    "drift_trend",
    "estimate_limits",
    "predicted_date",
    "prediction_limits",
    "trend_fit",
]


def prediction_limits(
    tracking: DriftTracking, judgement: Judgement
) -> tuple[float | None, float | None]:
    """The limits the dates are predicted against: the tightest of the judged reading's and
    those of the values measured in use this period (see ``DriftTracking.in_use``)."""
    return tighter((judgement.lower, judgement.upper), tracking.in_use.tightest)


def estimate_limits(
    tracking: DriftTracking, judgement: Judgement
) -> tuple[float | None, float | None]:
    """The limits the best estimate is judged against: those of the values measured in use
    recently when the tolerance is relative to the reading (see ``InUseLimits.recent``), else
    the judged reading's."""
    lower, upper = tracking.in_use.recent
    if lower is None and upper is None:
        return judgement.lower, judgement.upper
    return lower, upper


def trend_fit(tracking: DriftTracking, min_points: int) -> DriftFit:
    """The fit the drift rate and the dates come from (see :func:`drift_trend`)."""
    return drift_trend(
        tracking.fit, tracking.rise_fit, tracking.fall_fit, tracking.drift_side, min_points
    )


def drift_trend(
    fit: DriftFit, rise_fit: DriftFit, fall_fit: DriftFit, side: int, min_points: int
) -> DriftFit:
    """The fit since the change point once a drift is signalled on ``side`` (and it has
    ``min_points``), else the fit over the whole calibration period."""
    if side:
        trend = rise_fit if side > 0 else fall_fit
        if trend.n >= min_points:
            return trend
    return fit


class Estimate(NamedTuple):
    """The best estimate of the out-of-tolerance time and the numbers behind it."""

    at: float | None
    """Epoch seconds; ``None`` when the data do not support one yet (``note`` says why)."""
    u_days: float | None
    onset_at: float | None
    """When the drift began, by the two-phase fit (epoch seconds)."""
    note: str | None


def best_estimate(
    record: DriftRecord,
    in_use: InUseLimits,
    origin: float,
    now_days: float,
    lower: float | None,
    upper: float | None,
    policy: ProcessingPolicy,
) -> Estimate:
    """Best estimate of the out-of-tolerance time: where the two-phase fit's predicted error
    reaches a limit (:mod:`metrology.onset`).

    Given only when the crossing is ahead, its standard uncertainty is at most
    ``estimate_precision`` of the time left until it, and the time left is at most
    ``estimate_max_extrapolation`` times the drift's record since its onset (a line is not
    trusted far beyond its data).
    """
    onset_fit = fit_onset(record)
    if onset_fit is None:
        return Estimate(
            at=None, u_days=None, onset_at=None, note="too few residuals for the two-phase fit"
        )
    onset_at = origin + onset_fit.onset * SECONDS_PER_DAY

    def none(why: str, u: float | None = None) -> Estimate:
        return Estimate(at=None, u_days=u, onset_at=onset_at, note=why)

    crossing = onset_fit.crossing(lower, upper)
    if crossing is None:
        return none("the fitted error moves towards no limit")
    left = crossing - now_days
    u = onset_fit.crossing_standard_uncertainty(
        crossing, in_use.limit_uncertainty(upper=onset_fit.rate > 0.0)
    )
    drifting = now_days - onset_fit.onset
    if left <= 0.0:
        return none(f"the fitted error is at or beyond the limit now (+/- {u:.0f} d)", u)
    if u > policy.estimate_precision * left:
        return none(
            f"the error reaches the limit in {left:.0f} d +/- {u:.0f} d: too uncertain for a "
            f"best estimate yet (needs +/- {policy.estimate_precision * left:.0f} d)",
            u,
        )
    if left > policy.estimate_max_extrapolation * drifting:
        return none(
            f"the error reaches the limit in {left:.0f} d, beyond "
            f"{policy.estimate_max_extrapolation:g} x the {drifting:.0f} d of drift behind it",
            u,
        )
    return Estimate(
        at=origin + crossing * SECONDS_PER_DAY,
        u_days=u,
        onset_at=onset_at,
        note=f"{left:.0f} d +/- {u:.0f} d ahead at {onset_fit.rate:+.3g}/d since the onset",
    )


def predicted_date(
    fit: DriftFit,
    origin: float,
    now_days: float,
    judgement: Judgement,
    u_calibration: float,
    policy: ProcessingPolicy,
) -> tuple[float | None, str]:
    """Predicted out-of-tolerance time (epoch seconds) from the drift fit, or why there is none.

    The time the prediction band reaches a limit of ``judgement`` (Castrup, reliability-target
    method: :func:`metrology.drift.predicted_out_of_tolerance`).
    """
    spread = math.sqrt(fit.m2_t / fit.n) if fit.n else 0.0
    if spread < policy.prediction_min_spread_days:
        return None, (
            f"times spread {spread:.1f} d < {policy.prediction_min_spread_days:g} d: "
            "too short a record to extrapolate"
        )
    # A regression line is not trusted far beyond the data it was fitted to: look ahead at
    # most ``prediction_max_extrapolation`` times the span of the record (uniform sampling:
    # span = sqrt(12) x standard deviation of the times).
    span = math.sqrt(12.0) * spread
    prediction = predicted_out_of_tolerance(
        fit,
        judgement.lower,
        judgement.upper,
        u_calibration,
        policy.prediction_confidence,
        after=now_days,
        horizon=now_days + policy.prediction_max_extrapolation * span,
        min_points=policy.prediction_min_points,
        significance=policy.prediction_significance,
    )
    if prediction.time is None:
        return None, prediction.reason
    return origin + prediction.time * SECONDS_PER_DAY, prediction.reason


def at_risk(tracking: DriftTracking, due_at: float) -> bool:
    """Predicted out of tolerance before the due date: by the prediction band (the early,
    conservative date) or by the best estimate."""
    predicted, estimated = tracking.predicted_oot_at, tracking.estimated_oot_at
    return (predicted is not None and predicted < due_at) or (
        estimated is not None and estimated < due_at
    )
