"""Recommended calibration intervals, each explained by the numbers behind it.

ILAC-G24:2022 / OIML D 10:2022 ("Guidelines for the determination of recalibration intervals
of measuring equipment") describe the methods; METROLOGY.md, "Calibration intervals":

- Method 1, staircase (calendar time), :func:`staircase_interval`: lengthen the interval after
  a calibration that found the instrument well inside tolerance, shorten it after one that found
  it outside.
- Method 2 style, control chart / drift, :func:`drift_based_interval`: the time at which the
  prediction band of the fitted drift reaches a tolerance limit (the math is
  :func:`metrology.drift.predicted_out_of_tolerance`; Castrup, "Calibration Intervals from
  Variables Data").
- Statistical, NCSLI RP-1 exponential reliability model,
  :func:`exponential_reliability_interval`: ``R(T) = exp(-lambda T)`` gives
  ``T = -ln(R*) / lambda`` for a reliability target ``R*``.
- Method 3 (in-use time) is in :mod:`metrology.usage`.

Every function returns an :class:`IntervalRecommendation` (or a :class:`NoRecommendation`
saying why none is possible); intervals are in days.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from scipy.stats import chi2  # type: ignore[import-untyped, unused-ignore]

from metrology.drift import DriftFit, predicted_out_of_tolerance
from metrology.errors import IntervalError

__all__ = [
    "IntervalError",
    "IntervalMethod",
    "IntervalRecommendation",
    "NoRecommendation",
    "StaircasePolicy",
    "drift_based_interval",
    "exponential_reliability_interval",
    "staircase_interval",
]

FEW_EVENTS = 5
"""Below this many out-of-tolerance events the exponential estimate gets a confidence note."""


class IntervalMethod(StrEnum):
    """Which method produced a recommendation (stored with it, ISO/IEC 17025 §7.1.3 style)."""

    STAIRCASE = "ilac-g24 method 1 (staircase)"
    DRIFT = "ilac-g24 method 2 (drift / control chart)"
    EXPONENTIAL_RELIABILITY = "ncsli rp-1 exponential reliability"


def _frozen(numbers: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(numbers))


@dataclass(frozen=True, slots=True)
class IntervalRecommendation:
    """A recommended interval and why.

    ``numbers`` holds the inputs and intermediate values the recommendation rests on (read-only);
    ``clamped`` says whether the policy's minimum or maximum overrode the computed interval.
    """

    interval_days: float
    method: IntervalMethod
    reason: str
    numbers: Mapping[str, float] = field(default_factory=dict, hash=False)
    clamped: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "numbers", _frozen(self.numbers))


@dataclass(frozen=True, slots=True)
class NoRecommendation:
    """No interval can be recommended by ``method``; ``reason`` says why (keep the current one)."""

    method: IntervalMethod
    reason: str
    numbers: Mapping[str, float] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "numbers", _frozen(self.numbers))


def _check_bounds(min_days: float | None, max_days: float | None) -> None:
    if min_days is not None and not (math.isfinite(min_days) and min_days > 0.0):
        raise IntervalError(f"min_days must be finite and > 0, got {min_days}")
    if max_days is not None and not max_days > 0.0:
        raise IntervalError(f"max_days must be > 0, got {max_days}")
    if min_days is not None and max_days is not None and not min_days <= max_days:
        raise IntervalError(f"min_days {min_days} must not exceed max_days {max_days}")


def _clamp(days: float, min_days: float | None, max_days: float | None) -> tuple[float, bool]:
    if min_days is not None and days < min_days:
        return min_days, True
    if max_days is not None and days > max_days:
        return max_days, True
    return days, False


# --- Method 1: staircase -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StaircasePolicy:
    """How a staircase (ILAC-G24:2022 Method 1) reacts to an as-found result.

    With ``f = |as-found error| / MPE``: ``f <= lengthen_below`` lengthens the interval by
    ``lengthen_factor``; ``lengthen_below < f <= 1`` keeps it; ``f > 1`` (out of tolerance)
    shortens it by ``shorten_factor``, or by ``severe_shorten_factor`` when
    ``f > severe_above`` (if set). The result is clamped to ``[min_days, max_days]``.
    ILAC-G24 leaves the factors to the laboratory; the defaults (80 % of MPE, x1.25, x0.5) are
    common practice, not part of the guide.
    """

    lengthen_below: float = 0.8
    lengthen_factor: float = 1.25
    shorten_factor: float = 0.5
    min_days: float = 30.0
    max_days: float = 1826.0
    severe_above: float | None = None
    severe_shorten_factor: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.lengthen_below <= 1.0:
            raise IntervalError(f"lengthen_below must be in [0, 1], got {self.lengthen_below}")
        if not (math.isfinite(self.lengthen_factor) and self.lengthen_factor >= 1.0):
            raise IntervalError(f"lengthen_factor must be >= 1, got {self.lengthen_factor}")
        if not 0.0 < self.shorten_factor <= 1.0:
            raise IntervalError(f"shorten_factor must be in (0, 1], got {self.shorten_factor}")
        _check_bounds(self.min_days, self.max_days)
        if not math.isfinite(self.max_days):
            raise IntervalError(f"max_days must be finite, got {self.max_days}")
        if (self.severe_above is None) != (self.severe_shorten_factor is None):
            raise IntervalError("severe_above and severe_shorten_factor go together")
        if self.severe_above is not None and self.severe_shorten_factor is not None:
            if not self.severe_above > 1.0:
                raise IntervalError(f"severe_above must be > 1 (x MPE), got {self.severe_above}")
            if not 0.0 < self.severe_shorten_factor <= self.shorten_factor:
                raise IntervalError(
                    "severe_shorten_factor must be in (0, shorten_factor], "
                    f"got {self.severe_shorten_factor}"
                )


def staircase_interval(
    current_days: float, as_found_error: float, mpe: float, policy: StaircasePolicy
) -> IntervalRecommendation:
    """The next interval after a calibration that found ``as_found_error`` (ILAC-G24 Method 1).

    ``mpe`` is the (symmetric) maximum permissible error, > 0, in the unit of the error. The
    recommendation is ``clamp(current_days * factor, min_days, max_days)`` with the factor of
    :class:`StaircasePolicy` for ``f = |as_found_error| / mpe``. Non-increasing in
    ``|as_found_error|``.
    """
    if not (math.isfinite(current_days) and current_days > 0.0):
        raise IntervalError(f"current interval must be finite and > 0 days, got {current_days}")
    if not (math.isfinite(mpe) and mpe > 0.0):
        raise IntervalError(f"MPE must be finite and > 0, got {mpe}")
    if math.isnan(as_found_error):
        raise IntervalError("as-found error is NaN")
    fraction = abs(as_found_error) / mpe
    if fraction <= policy.lengthen_below:
        factor = policy.lengthen_factor
        outcome = f"as-found {fraction:.0%} of MPE <= {policy.lengthen_below:.0%}: lengthen"
    elif fraction <= 1.0:
        factor = 1.0
        outcome = f"as-found {fraction:.0%} of MPE, inside tolerance: keep"
    elif (
        policy.severe_above is not None
        and policy.severe_shorten_factor is not None
        and fraction > policy.severe_above
    ):
        factor = policy.severe_shorten_factor
        outcome = f"as-found {fraction:.0%} of MPE > {policy.severe_above:.0%}: shorten sharply"
    else:
        factor = policy.shorten_factor
        outcome = f"as-found {fraction:.0%} of MPE, out of tolerance: shorten"
    unclamped = current_days * factor
    days, clamped = _clamp(unclamped, policy.min_days, policy.max_days)
    reason = f"{outcome} x{factor:g} -> {unclamped:.6g} d"
    if clamped:
        reason += f", clamped to {days:g} d"
    return IntervalRecommendation(
        days,
        IntervalMethod.STAIRCASE,
        reason,
        {
            "current_days": current_days,
            "as_found_error": as_found_error,
            "mpe": mpe,
            "as_found_fraction_of_mpe": fraction,
            "factor": factor,
            "unclamped_days": unclamped,
            "min_days": policy.min_days,
            "max_days": policy.max_days,
        },
        clamped,
    )


# --- Method 2 style: drift ------------------------------------------------------------------


def drift_based_interval(
    fit: DriftFit,
    lower: float | None,
    upper: float | None,
    calibration_uncertainty: float,
    confidence: float = 0.95,
    *,
    safety_factor: float = 1.0,
    min_points: int = 5,
    significance: float = 0.05,
    min_days: float | None = None,
    max_days: float | None = None,
) -> IntervalRecommendation | NoRecommendation:
    """The time the drift's prediction band reaches a tolerance limit, times ``safety_factor``.

    ILAC-G24:2022 Method 2 (control chart) with the band of Castrup, "Calibration Intervals from
    Variables Data" (reliability-target method, as in suncal ``calc_reliability_target``):
    ``fit`` is the error against **days since the calibration**, ``calibration_uncertainty``
    the standard uncertainty ``u0`` of those errors; the crossing time is that of
    :func:`metrology.drift.predicted_out_of_tolerance` from ``t = 0``. The recommendation is
    ``clamp(safety_factor * t_cross, min_days, max_days)``.

    :class:`NoRecommendation` when the drift gives no basis: too few points, no spread in time,
    slope not significant, no tolerance limits, a band that never reaches a limit, or a band
    already outside tolerance at ``t = 0`` (recalibrate now, an interval makes no sense).
    """
    if not 0.0 < safety_factor <= 1.0:
        raise IntervalError(f"safety_factor must be in (0, 1], got {safety_factor}")
    _check_bounds(min_days, max_days)
    prediction = predicted_out_of_tolerance(
        fit,
        lower,
        upper,
        calibration_uncertainty,
        confidence,
        after=0.0,
        min_points=min_points,
        significance=significance,
    )
    numbers: dict[str, float] = {
        "points": fit.n,
        "calibration_uncertainty": calibration_uncertainty,
        "confidence": confidence,
        "safety_factor": safety_factor,
    }
    if lower is not None:
        numbers["lower_limit"] = lower
    if upper is not None:
        numbers["upper_limit"] = upper
    if prediction.slope is not None:
        numbers["slope_per_day"] = prediction.slope
    if prediction.slope_t is not None:
        numbers["slope_t"] = prediction.slope_t
    if prediction.coverage_factor is not None:
        numbers["coverage_factor"] = prediction.coverage_factor
    if prediction.dof is not None:
        numbers["dof"] = prediction.dof
    if prediction.time is None:
        return NoRecommendation(IntervalMethod.DRIFT, prediction.reason, numbers)
    if prediction.time <= 0.0:
        return NoRecommendation(
            IntervalMethod.DRIFT,
            f"{prediction.reason} ({prediction.limit}): recalibrate now",
            numbers,
        )
    numbers["predicted_out_of_tolerance_days"] = prediction.time
    unclamped = safety_factor * prediction.time
    numbers["unclamped_days"] = unclamped
    days, clamped = _clamp(unclamped, min_days, max_days)
    reason = (
        f"prediction band (k={prediction.coverage_factor:.3g}) reaches the {prediction.limit} "
        f"limit at {prediction.time:.6g} d; x{safety_factor:g} -> {unclamped:.6g} d"
    )
    if clamped:
        reason += f", clamped to {days:g} d"
    return IntervalRecommendation(days, IntervalMethod.DRIFT, reason, numbers, clamped)


# --- NCSLI RP-1 exponential reliability model ----------------------------------------------


def exponential_reliability_interval(
    out_of_tolerance_count: int,
    total_days_in_service: float,
    reliability_target: float,
    *,
    confidence: float = 0.95,
    conservative: bool = False,
    min_days: float | None = None,
    max_days: float | None = None,
) -> IntervalRecommendation | NoRecommendation:
    """``T = -ln(R*) / lambda`` with ``lambda = n_OOT / total days in service`` (NCSLI RP-1).

    The exponential reliability model of NCSLI RP-1 ("Establishment and Adjustment of
    Calibration Intervals", exponential model): ``R(T) = exp(-lambda T)``, so the interval at
    which the in-tolerance probability falls to the target ``R*`` is ``T = -ln(R*) / lambda``;
    ``lambda`` is the maximum-likelihood rate, out-of-tolerance events over instrument-days.

    Few events make ``lambda`` uncertain, so the one-sided upper confidence bound of the rate
    for a time-truncated observation, ``lambda_U = chi2_(confidence, 2 n + 2) / (2 T_total)``
    (Epstein 1960; NIST/SEMATECH e-Handbook of Statistical Methods §8.4.5.1), is always
    computed: ``T_L = -ln(R*) / lambda_U`` is, at that confidence, a lower bound of the interval
    that meets the target. ``conservative=True`` recommends ``T_L``; otherwise the point
    estimate is recommended and, with fewer than :data:`FEW_EVENTS` events, the reason quotes
    ``T_L`` as a confidence note. With no events the point estimate is unbounded: it is clamped
    to ``max_days`` if given, else :class:`NoRecommendation` (quoting ``T_L``).
    """
    if isinstance(out_of_tolerance_count, bool) or not isinstance(out_of_tolerance_count, int):
        raise IntervalError(f"event count must be an int, got {out_of_tolerance_count!r}")
    if out_of_tolerance_count < 0:
        raise IntervalError(f"event count must be >= 0, got {out_of_tolerance_count}")
    if not (math.isfinite(total_days_in_service) and total_days_in_service > 0.0):
        raise IntervalError(
            f"total days in service must be finite and > 0, got {total_days_in_service}"
        )
    if not 0.0 < reliability_target < 1.0:
        raise IntervalError(f"reliability target must be in (0, 1), got {reliability_target}")
    if not 0.0 < confidence < 1.0:
        raise IntervalError(f"confidence must be in (0, 1), got {confidence}")
    _check_bounds(min_days, max_days)

    n = out_of_tolerance_count
    minus_log_r = -math.log(reliability_target)
    rate_upper = float(chi2.ppf(confidence, 2 * n + 2)) / (2.0 * total_days_in_service)
    lower_bound_days = minus_log_r / rate_upper
    rate = n / total_days_in_service
    point = minus_log_r / rate if n else math.inf
    numbers: dict[str, float] = {
        "out_of_tolerance_count": n,
        "total_days_in_service": total_days_in_service,
        "reliability_target": reliability_target,
        "confidence": confidence,
        "rate_per_day": rate,
        "point_estimate_days": point,
        "rate_upper_per_day": rate_upper,
        "lower_bound_days": lower_bound_days,
    }
    bound_note = (
        f"at {confidence:.0%} confidence lambda <= {rate_upper:.3g}/d, "
        f"so T >= -ln({reliability_target:g}) / {rate_upper:.3g} = {lower_bound_days:.4g} d"
    )
    if conservative:
        unclamped = lower_bound_days
        reason = f"{n} event(s) in {total_days_in_service:g} instrument-days; {bound_note}"
    elif n == 0:
        if max_days is None:
            return NoRecommendation(
                IntervalMethod.EXPONENTIAL_RELIABILITY,
                f"no out-of-tolerance events in {total_days_in_service:g} instrument-days: "
                f"point estimate unbounded; {bound_note}",
                numbers,
            )
        unclamped = point
        reason = (
            f"no out-of-tolerance events in {total_days_in_service:g} instrument-days: point "
            f"estimate unbounded; {bound_note}"
        )
    else:
        unclamped = point
        reason = (
            f"lambda = {n} / {total_days_in_service:g} d = {rate:.3g}/d; "
            f"T = -ln({reliability_target:g}) / lambda = {point:.4g} d"
        )
        if n < FEW_EVENTS:
            reason += f"; only {n} event(s), lambda is uncertain: {bound_note}"
    numbers["unclamped_days"] = unclamped
    days, clamped = _clamp(unclamped, min_days, max_days)
    if clamped:
        reason += f"; clamped to {days:g} d"
    return IntervalRecommendation(
        days, IntervalMethod.EXPONENTIAL_RELIABILITY, reason, numbers, clamped
    )
