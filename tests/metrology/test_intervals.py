"""Calibration interval recommendations: staircase, drift-based, exponential reliability."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from metrology.drift import DriftFit, predicted_out_of_tolerance, student_t_factor
from metrology.intervals import (
    IntervalError,
    IntervalMethod,
    IntervalRecommendation,
    NoRecommendation,
    StaircasePolicy,
    drift_based_interval,
    exponential_reliability_interval,
    staircase_interval,
)


def fit_of(times: np.ndarray | list[float], errors: np.ndarray | list[float]) -> DriftFit:
    fit = DriftFit()
    for t, e in zip(times, errors, strict=True):
        fit = fit.add(float(t), float(e))
    return fit


def recommended(result: IntervalRecommendation | NoRecommendation) -> IntervalRecommendation:
    assert isinstance(result, IntervalRecommendation), result
    return result


# --- ILAC-G24 Method 1: staircase -------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "error", "expected", "factor", "clamped"),
    [
        (365.0, 0.5, 456.25, 1.25, False),  # 50 % of MPE <= 80 %: 365 x 1.25
        (365.0, -0.8, 456.25, 1.25, False),  # exactly 80 %: still lengthen (|e| counts)
        (365.0, 0.9, 365.0, 1.0, False),  # 90 %: inside tolerance, keep
        (365.0, -1.0, 365.0, 1.0, False),  # at the MPE: inside tolerance, keep
        (365.0, 1.2, 182.5, 0.5, False),  # out of tolerance: 365 x 0.5
        (1600.0, 0.1, 1826.0, 1.25, True),  # 2000 d clamped to max 1826 d
        (50.0, 3.0, 30.0, 0.5, True),  # 25 d clamped to min 30 d
    ],
)
def test_staircase_worked_examples(
    current: float, error: float, expected: float, factor: float, clamped: bool
) -> None:
    """ILAC-G24:2022 Method 1 with the default policy, by hand.

    Policy: lengthen x1.25 when |e| <= 0.8 MPE, keep when 0.8 MPE < |e| <= MPE, shorten x0.5
    when |e| > MPE, then clamp to [30, 1826] d. MPE = 1.0, so the fraction is |e| itself:
    365 d with e = 0.5 -> 365 x 1.25 = 456.25 d; e = 1.2 -> 365 x 0.5 = 182.5 d;
    1600 d with e = 0.1 -> 2000 d, clamped to 1826 d; 50 d with e = 3.0 -> 25 d, clamped to 30 d.
    """
    result = staircase_interval(current, error, 1.0, StaircasePolicy())
    assert result.interval_days == pytest.approx(expected)
    assert result.method is IntervalMethod.STAIRCASE
    assert result.clamped is clamped
    assert result.numbers["factor"] == factor
    assert result.numbers["as_found_fraction_of_mpe"] == pytest.approx(abs(error))
    assert result.numbers["unclamped_days"] == pytest.approx(current * factor)
    assert ("clamped" in result.reason) is clamped


def test_staircase_severe_outcome() -> None:
    """With severe_above = 2 MPE and factor 0.25: e = 2.5 MPE -> 365 x 0.25 = 91.25 d."""
    policy = StaircasePolicy(severe_above=2.0, severe_shorten_factor=0.25)
    assert staircase_interval(365.0, 2.5, 1.0, policy).interval_days == pytest.approx(91.25)
    assert staircase_interval(365.0, 1.5, 1.0, policy).interval_days == pytest.approx(182.5)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(lengthen_below=1.5),
        dict(lengthen_factor=0.9),
        dict(shorten_factor=0.0),
        dict(shorten_factor=1.5),
        dict(min_days=400.0, max_days=300.0),
        dict(severe_above=2.0),
        dict(severe_above=0.5, severe_shorten_factor=0.25),
        dict(severe_above=2.0, severe_shorten_factor=0.75),
    ],
)
def test_staircase_policy_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(IntervalError):
        StaircasePolicy(**kwargs)


def test_staircase_argument_validation() -> None:
    policy = StaircasePolicy()
    for current, error, mpe in ((0.0, 0.1, 1.0), (365.0, 0.1, 0.0), (365.0, math.nan, 1.0)):
        with pytest.raises(IntervalError):
            staircase_interval(current, error, mpe, policy)


policies = st.builds(
    StaircasePolicy,
    lengthen_below=st.floats(0.0, 1.0),
    lengthen_factor=st.floats(1.0, 3.0),
    shorten_factor=st.floats(0.05, 1.0),
    min_days=st.floats(1.0, 100.0),
    max_days=st.floats(100.0, 5000.0),
)


@given(
    st.floats(1.0, 4000.0),
    st.floats(-10.0, 10.0),
    st.floats(-10.0, 10.0),
    st.floats(0.01, 5.0),
    policies,
)
def test_staircase_monotonic_in_as_found_error(
    current: float, e1: float, e2: float, mpe: float, policy: StaircasePolicy
) -> None:
    """A larger |as-found error| never gives a longer interval; result within [min, max]."""
    smaller, larger = sorted((e1, e2), key=abs)
    a = staircase_interval(current, smaller, mpe, policy).interval_days
    b = staircase_interval(current, larger, mpe, policy).interval_days
    assert b <= a
    assert policy.min_days <= b <= a <= policy.max_days


def test_recommendation_numbers_are_read_only_and_hashable() -> None:
    result = staircase_interval(365.0, 0.5, 1.0, StaircasePolicy())
    with pytest.raises(TypeError):
        result.numbers["factor"] = 2.0  # type: ignore[index]
    assert hash(result) == hash(staircase_interval(365.0, 0.5, 1.0, StaircasePolicy()))


# --- drift-based (Method 2 style) -------------------------------------------------------------

TIMES = np.arange(0.0, 100.0, 10.0)  # 10 checks, every 10 days since calibration
SLOPE = 0.002  # error unit per day


def test_drift_interval_equals_predicted_crossing_on_noiseless_drift() -> None:
    """Noiseless e(t) = 0.002 t, limits +/- 0.5, u0 = 0.05, 95 % two-sided.

    s = 0, so the band is e(t) +/- k u0 with k = t_(0.975, 8) = 2.306: the upper edge reaches
    0.5 at t = (0.5 - 2.306 x 0.05) / 0.002 = 192.35 d (Castrup, reliability-target method).
    """
    fit = fit_of(TIMES, SLOPE * TIMES)
    result = recommended(drift_based_interval(fit, -0.5, 0.5, 0.05))
    k = student_t_factor(0.95, 8, two_sided=True)
    assert k == pytest.approx(2.306, abs=1e-3)
    crossing = (0.5 - k * 0.05) / SLOPE
    assert crossing == pytest.approx(192.35, abs=0.05)
    assert result.interval_days == pytest.approx(crossing, rel=1e-9)
    prediction = predicted_out_of_tolerance(fit, -0.5, 0.5, 0.05)
    assert result.interval_days == prediction.time
    assert result.method is IntervalMethod.DRIFT
    assert result.numbers["predicted_out_of_tolerance_days"] == prediction.time
    assert result.numbers["coverage_factor"] == pytest.approx(k)
    assert "upper" in result.reason


def test_drift_interval_safety_factor_and_clamp() -> None:
    fit = fit_of(TIMES, SLOPE * TIMES)
    crossing = (0.5 - student_t_factor(0.95, 8, two_sided=True) * 0.05) / SLOPE
    safe = recommended(drift_based_interval(fit, -0.5, 0.5, 0.05, safety_factor=0.8))
    assert safe.interval_days == pytest.approx(0.8 * crossing, rel=1e-9)
    capped = recommended(drift_based_interval(fit, -0.5, 0.5, 0.05, max_days=120.0))
    assert (capped.interval_days, capped.clamped) == (120.0, True)
    assert capped.numbers["unclamped_days"] == pytest.approx(crossing, rel=1e-9)


def test_drift_interval_one_sided_lower_limit_on_negative_drift() -> None:
    """One-sided: k = t_(0.95, 8) = 1.860; -0.002 t - 1.860 x 0.05 = -0.5 at t = 203.5 d."""
    fit = fit_of(TIMES, -SLOPE * TIMES)
    result = recommended(drift_based_interval(fit, -0.5, None, 0.05))
    k = float(stats.t.ppf(0.95, 8))
    assert result.interval_days == pytest.approx((0.5 - k * 0.05) / SLOPE, rel=1e-9)
    assert "lower" in result.reason


@pytest.mark.parametrize(
    ("times", "errors", "u0", "reason"),
    [
        ([0.0, 10.0, 20.0], [0.0, 0.02, 0.04], 0.05, "too few points"),
        (list(TIMES), [0.01 * (-1) ** i for i in range(10)], 0.05, "slope not significant"),
        (list(TIMES), list(SLOPE * TIMES), 0.3, "recalibrate now"),
    ],
)
def test_drift_interval_says_why_there_is_none(
    times: list[float], errors: list[float], u0: float, reason: str
) -> None:
    result = drift_based_interval(fit_of(times, errors), -0.5, 0.5, u0)
    assert isinstance(result, NoRecommendation)
    assert reason in result.reason
    assert result.method is IntervalMethod.DRIFT


def test_drift_interval_refuses_bad_safety_factor() -> None:
    with pytest.raises(IntervalError):
        drift_based_interval(fit_of(TIMES, SLOPE * TIMES), -0.5, 0.5, 0.05, safety_factor=1.5)


# --- NCSLI RP-1 exponential reliability model ------------------------------------------------


def test_exponential_worked_example() -> None:
    """NCSLI RP-1 exponential model: R(T) = exp(-lambda T), T = -ln(R*) / lambda.

    2 out-of-tolerance events in 3 650 instrument-days: lambda = 2 / 3650 = 5.479e-4 per day;
    R* = 0.95: T = -ln(0.95) / 5.479e-4 = 0.051293 x 1825 = 93.61 days.
    Confidence note (time-truncated, NIST/SEMATECH e-Handbook §8.4.5.1): chi2_(0.95, 6) = 12.592,
    lambda_U = 12.592 / 7300 = 1.7249e-3 per day, T_L = 0.051293 / 1.7249e-3 = 29.74 days.
    """
    result = recommended(exponential_reliability_interval(2, 3650.0, 0.95))
    assert result.interval_days == pytest.approx(93.61, abs=0.01)
    assert result.method is IntervalMethod.EXPONENTIAL_RELIABILITY
    assert result.numbers["rate_per_day"] == pytest.approx(2 / 3650)
    assert result.numbers["rate_upper_per_day"] == pytest.approx(12.592 / 7300, rel=1e-4)
    assert result.numbers["lower_bound_days"] == pytest.approx(29.74, abs=0.01)
    assert "uncertain" in result.reason and "29.74" in result.reason
    conservative = recommended(exponential_reliability_interval(2, 3650.0, 0.95, conservative=True))
    assert conservative.interval_days == pytest.approx(29.74, abs=0.01)


def test_exponential_reliability_at_the_interval_is_the_target() -> None:
    result = recommended(exponential_reliability_interval(12, 5000.0, 0.9))
    rate = result.numbers["rate_per_day"]
    assert math.exp(-rate * result.interval_days) == pytest.approx(0.9, rel=1e-12)
    assert "uncertain" not in result.reason  # 12 events: no note


def test_exponential_no_events() -> None:
    """No events: unbounded point estimate; a NoRecommendation quoting T_L, or max_days.

    chi2_(0.95, 2) = 5.991: lambda_U = 5.991 / 7300 = 8.207e-4, T_L = 0.051293 / 8.207e-4
    = 62.50 days.
    """
    result = exponential_reliability_interval(0, 3650.0, 0.95)
    assert isinstance(result, NoRecommendation)
    assert "62.5" in result.reason
    capped = recommended(exponential_reliability_interval(0, 3650.0, 0.95, max_days=730.0))
    assert (capped.interval_days, capped.clamped) == (730.0, True)
    conservative = recommended(exponential_reliability_interval(0, 3650.0, 0.95, conservative=True))
    assert conservative.interval_days == pytest.approx(62.50, abs=0.01)


@given(st.integers(0, 50), st.floats(10.0, 1e5), st.floats(0.5, 0.999))
def test_exponential_shorter_with_more_events(n: int, days: float, target: float) -> None:
    """More out-of-tolerance events never lengthen the interval (point or conservative)."""
    a = recommended(exponential_reliability_interval(n, days, target, conservative=True))
    b = recommended(exponential_reliability_interval(n + 1, days, target, conservative=True))
    assert b.interval_days < a.interval_days
    if n > 0:
        c = recommended(exponential_reliability_interval(n, days, target))
        d = recommended(exponential_reliability_interval(n + 1, days, target))
        assert d.interval_days < c.interval_days
        assert a.interval_days < c.interval_days  # the bound is below the point estimate


@pytest.mark.parametrize(
    ("count", "days", "target"),
    [(-1, 100.0, 0.9), (1, 0.0, 0.9), (1, 100.0, 1.0), (1, 100.0, 0.0), (True, 100.0, 0.9)],
)
def test_exponential_argument_validation(count: int, days: float, target: float) -> None:
    with pytest.raises(IntervalError):
        exponential_reliability_interval(count, days, target)
