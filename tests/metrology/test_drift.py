"""Drift-rate fit and predicted out-of-tolerance time."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats

from metrology.drift import (
    DriftFit,
    DriftFitError,
    OutOfTolerancePrediction,
    predict_out_of_tolerance,
    predicted_out_of_tolerance,
    student_t_factor,
)


def fit_of(times: list[float] | np.ndarray, errors: list[float] | np.ndarray) -> DriftFit:
    fit = DriftFit()
    for t, e in zip(times, errors, strict=True):
        fit = fit.add(float(t), float(e))
    return fit


# Rounded so that squares stay far from the subnormal range (where every digit is lost).
times_st = st.floats(0.0, 1000.0).map(lambda x: round(x, 6))
errors_st = st.floats(-50.0, 50.0).map(lambda x: round(x, 9))
series = st.integers(3, 40).flatmap(
    lambda n: st.tuples(
        st.lists(times_st, min_size=n, max_size=n),
        st.lists(errors_st, min_size=n, max_size=n),
    )
)


@given(series)
def test_fit_equals_scipy_linregress(data: tuple[list[float], list[float]]) -> None:
    """Slope, intercept and their standard errors equal scipy.stats.linregress on the same data."""
    times, errors = data
    assume(np.ptp(times) > 1e-3 * max(1.0, float(np.max(np.abs(times)))))
    assume(np.ptp(errors) > 0.0)  # linregress returns nan standard errors for constant errors
    fit = fit_of(times, errors)
    reference = stats.linregress(times, errors)
    scale = max(1.0, float(np.max(np.abs(errors))))
    assert fit.slope == pytest.approx(reference.slope, rel=1e-6, abs=1e-9 * scale)
    assert fit.intercept == pytest.approx(reference.intercept, rel=1e-6, abs=1e-7 * scale)
    # SSE = Syy - Sxy^2/Sxx (both here and in linregress, through r) keeps an absolute error of
    # about eps * Syy: near-perfect fits differ in relative terms, not in absolute ones.
    s_floor = math.sqrt(1e-13 * fit.m2_e / fit.dof)
    assert fit.slope_standard_error == pytest.approx(
        reference.stderr, rel=1e-5, abs=s_floor / math.sqrt(fit.m2_t)
    )
    covariance = fit.covariance()
    assert covariance is not None
    assert math.sqrt(covariance[0][0]) == pytest.approx(
        reference.intercept_stderr,
        rel=1e-5,
        abs=s_floor * (1.0 + abs(fit.mean_t) / math.sqrt(fit.m2_t)),
    )


@given(series)
def test_incremental_fit_equals_the_batch_formulas(data: tuple[list[float], list[float]]) -> None:
    """The running co-moments equal numpy's batch means, Sxx, Syy, Sxy; Cov(b) equals polyfit's."""
    times, errors = data
    assume(np.ptp(times) > 1e-3 * max(1.0, float(np.max(np.abs(times)))))
    fit = fit_of(times, errors)
    t, e = np.asarray(times), np.asarray(errors)
    scale_t, scale_e = max(1.0, float(np.max(np.abs(t)))), max(1.0, float(np.max(np.abs(e))))
    n = len(t)
    assert fit.n == n
    assert fit.mean_t == pytest.approx(t.mean(), abs=1e-12 * scale_t)
    assert fit.mean_e == pytest.approx(e.mean(), abs=1e-12 * scale_e)
    assert fit.m2_t == pytest.approx(((t - t.mean()) ** 2).sum(), rel=1e-9, abs=1e-9 * scale_t**2)
    assert fit.m2_e == pytest.approx(((e - e.mean()) ** 2).sum(), rel=1e-9, abs=1e-9 * scale_e**2)
    assert fit.c_te == pytest.approx(
        ((t - t.mean()) * (e - e.mean())).sum(), rel=1e-9, abs=1e-9 * scale_t * scale_e
    )
    s = fit.residual_sd
    assert s is not None
    _, unscaled = np.polyfit(t, e, 1, cov="unscaled")
    covariance = fit.covariance()
    assert covariance is not None
    # polyfit orders (b1, b0); ours is (b0, b1).
    expected = s * s * unscaled[::-1, ::-1]
    assert np.allclose(np.asarray(covariance), expected, rtol=1e-5, atol=1e-9 * scale_e**2)


def test_predict_is_the_castrup_prediction_uncertainty() -> None:
    """u_pred(t)^2 = s^2 + t'^T Cov(b) t' with t' = (1, t) (Castrup; suncal u_pred)."""
    rng = np.random.default_rng(11)
    t = np.sort(rng.uniform(0, 200, 25))
    e = 0.003 * t + rng.normal(0, 0.05, t.size)
    fit = fit_of(t, e)
    covariance = np.asarray(fit.covariance())
    s = fit.residual_sd
    assert s is not None and fit.slope is not None and fit.intercept is not None
    for at in (0.0, 50.0, 365.0, 2000.0):
        prediction = fit.predict(at)
        assert prediction is not None
        tp = np.array([1.0, at])
        assert prediction[0] == pytest.approx(fit.intercept + fit.slope * at)
        assert prediction[1] == pytest.approx(math.sqrt(s * s + tp @ covariance @ tp), rel=1e-9)


def test_fit_needs_three_points_with_spread_in_time() -> None:
    assert DriftFit().slope is None
    two = fit_of([0.0, 1.0], [0.0, 1.0])
    assert two.slope is None and two.residual_sd is None and two.predict(3.0) is None
    same_time = fit_of([5.0, 5.0, 5.0, 5.0], [0.0, 1.0, 2.0, 3.0])
    assert not same_time.has_time_spread
    assert same_time.slope is None and same_time.covariance() is None
    three = fit_of([0.0, 1.0, 2.0], [0.0, 1.0, 2.0])
    assert three.slope == pytest.approx(1.0)
    assert three.residual_sd == pytest.approx(0.0, abs=1e-12)
    assert three.slope_t == math.inf


def test_fit_is_numerically_stable_far_from_the_origin() -> None:
    """Epoch-like times (1.7e9) with a 1e-6 slope: naive running sums would lose every digit."""
    t = 1.7e9 + np.arange(0.0, 1000.0)
    e = 1e-6 * (t - 1.7e9) + 0.5
    fit = fit_of(t, e)
    assert fit.slope == pytest.approx(1e-6, rel=1e-6)
    assert fit.intercept is not None
    assert fit.intercept + fit.slope * 1.7e9 == pytest.approx(0.5, abs=1e-6)


def test_noiseless_linear_drift_crosses_at_the_analytic_time_with_the_band() -> None:
    """Noiseless e = b0 + b1 t: s = 0, so the band is k u0 and the crossing is analytic.

    Upper limit 1, u0 = 0.1, both limits given, so k = t_(0.975, n-2) (two-sided, as suncal's
    t_factor): t* = (1 - b0 - k u0) / b1. Expected value from scipy.stats.t, computed here.
    """
    times = [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
    errors = [0.1 + 0.02 * t for t in times]
    k = stats.t.ppf(0.975, len(times) - 2)
    expected = (1.0 - 0.1 - k * 0.1) / 0.02
    assert predict_out_of_tolerance(times, errors, -1.0, 1.0, 0.1) == pytest.approx(expected)
    # With no calibration uncertainty the band collapses to the line itself.
    assert predict_out_of_tolerance(times, errors, -1.0, 1.0, 0.0) == pytest.approx(45.0)
    # Downward drift reaches the lower limit; a one-sided tolerance uses the one-sided factor.
    down = [-e for e in errors]
    k_one = stats.t.ppf(0.95, len(times) - 2)
    assert predict_out_of_tolerance(times, down, -1.0, None, 0.1) == pytest.approx(
        (1.0 - 0.1 - k_one * 0.1) / 0.02
    )
    assert predict_out_of_tolerance(times, down, None, 1.0, 0.1) is None


def test_no_prediction_for_a_flat_series_or_too_few_points() -> None:
    times = [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
    assert predict_out_of_tolerance(times, [0.2] * 6, -1.0, 1.0, 0.1) is None
    assert (
        predict_out_of_tolerance(times[:4], [0.02 * t for t in times[:4]], -1.0, 1.0, 0.1) is None
    )
    fit = fit_of(times[:2], [0.0, 0.2])
    outcome = predicted_out_of_tolerance(fit, -1.0, 1.0, 0.1)
    assert outcome.time is None and outcome.reason == "too few points (n=2 < 5)"
    flat = predicted_out_of_tolerance(fit_of(times, [0.2] * 6), -1.0, 1.0, 0.1)
    assert flat.time is None and flat.reason.startswith("slope not significant (|t|=0 < 2.78")


def test_noisy_flat_series_is_not_significant() -> None:
    rng = np.random.default_rng(5)
    t = np.linspace(0, 300, 60)
    e = rng.normal(0.0, 0.1, t.size)
    outcome = predicted_out_of_tolerance(fit_of(t, e), -1.0, 1.0, 0.05)
    assert outcome.time is None
    assert outcome.reason.startswith("slope not significant")
    assert outcome.slope_t is not None and abs(outcome.slope_t) < 2.0
    assert outcome.dof == 58 and outcome.coverage_factor == pytest.approx(stats.t.ppf(0.975, 58))


def test_band_already_outside_horizon_and_never() -> None:
    times = np.linspace(0.0, 100.0, 11)
    rising = 0.005 * times
    fit = fit_of(times, rising)
    already = predicted_out_of_tolerance(fit, -1.0, 1.0, 0.6, after=100.0)
    assert already.time == 100.0 and already.reason == "band already outside tolerance at t=100"
    assert already.limit == "upper"
    late = predicted_out_of_tolerance(fit, -1.0, 1.0, 0.01, after=100.0, horizon=150.0)
    assert late.time is None and late.reason.startswith("not within horizon")
    within = predicted_out_of_tolerance(fit, -1.0, 1.0, 0.01, after=100.0, horizon=250.0)
    assert within.reason == "predicted" and within.time is not None and 100.0 < within.time < 200.0
    assert within.slope == pytest.approx(0.005)
    # A negative slope with only an upper limit never reaches it (noiseless: no flaring band).
    never = predicted_out_of_tolerance(fit_of(times, -rising), None, 1.0, 0.01)
    assert never.time is None and never.reason == "band never reaches a limit"
    none_given = predicted_out_of_tolerance(fit, None, None, 0.01)
    assert none_given.time is None and none_given.reason == "no tolerance limits"


def _edges(fit: DriftFit, t: float, k: float, u0: float) -> tuple[float, float]:
    prediction = fit.predict(t)
    assert prediction is not None
    e_hat, u = prediction
    half = k * math.sqrt(u0 * u0 + u * u)
    return e_hat - half, e_hat + half


@settings(max_examples=200, deadline=None)
@given(
    slope=st.floats(-0.05, 0.05).filter(lambda b: abs(b) > 1e-3),
    noise=st.floats(0.0, 0.2),
    u0=st.floats(0.0, 0.3),
    n=st.integers(5, 40),
    seed=st.integers(0, 2**32 - 1),
    after=st.floats(0.0, 150.0),
    sides=st.sampled_from(["both", "upper", "lower"]),
)
def test_predicted_time_is_the_first_crossing_of_the_band(
    slope: float, noise: float, u0: float, n: int, seed: int, after: float, sides: str
) -> None:
    """Against a direct evaluation of the band: at the predicted time an edge is on a limit,
    and on a fine grid from ``after`` up to it both edges are inside the tolerance."""
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0.0, 150.0, n))
    errors = slope * times + rng.normal(0.0, noise, n) if noise > 0 else slope * times
    fit = fit_of(times, errors)
    assume(fit.has_time_spread)
    lower = -2.0 if sides in ("both", "lower") else None
    upper = 2.0 if sides in ("both", "upper") else None
    outcome = predicted_out_of_tolerance(fit, lower, upper, u0, after=after)
    if outcome.time is None:
        assert outcome.reason != "predicted"
        if outcome.reason == "band never reaches a limit":
            assert outcome.coverage_factor is not None
            for t in np.linspace(after, after + 1e5, 2001):
                low, high = _edges(fit, float(t), outcome.coverage_factor, u0)
                assert (upper is None or high < upper) and (lower is None or low > lower)
        return
    k = outcome.coverage_factor
    assert k is not None
    expected_k = stats.t.ppf(0.975 if sides == "both" else 0.95, n - 2)
    assert k == pytest.approx(expected_k)
    if outcome.reason.startswith("band already outside"):
        assert outcome.time == after
        low, high = _edges(fit, after, k, u0)
        assert (upper is not None and high >= upper) or (lower is not None and low <= lower)
        return
    assert outcome.reason == "predicted" and outcome.time > after
    low, high = _edges(fit, outcome.time, k, u0)
    limit = upper if outcome.limit == "upper" else lower
    assert limit is not None
    assert (high if outcome.limit == "upper" else low) == pytest.approx(limit, abs=1e-7)
    for t in np.linspace(after, outcome.time, 400)[:-1]:
        low, high = _edges(fit, float(t), k, u0)
        assert (upper is None or high < upper + 1e-9) and (lower is None or low > lower - 1e-9)


def test_prediction_and_fit_are_plain_values() -> None:
    fit = fit_of(np.arange(6.0), np.arange(6.0) * 0.1)
    data = fit._asdict()
    assert DriftFit(**data) == fit
    assert all(type(v) in (int, float) for v in data.values())
    outcome = predicted_out_of_tolerance(fit, -1.0, 1.0, 0.01)
    assert isinstance(outcome, OutOfTolerancePrediction)
    assert OutOfTolerancePrediction(**dataclasses.asdict(outcome)) == outcome
    assert all(
        type(v) in (int, float, str) or v is None for v in dataclasses.asdict(outcome).values()
    )


def test_invalid_arguments_are_refused() -> None:
    fit = fit_of(np.arange(6.0), np.arange(6.0) * 0.1)
    with pytest.raises(DriftFitError):
        predicted_out_of_tolerance(fit, 1.0, -1.0, 0.1)
    with pytest.raises(DriftFitError):
        predicted_out_of_tolerance(fit, -1.0, 1.0, -0.1)
    with pytest.raises(DriftFitError):
        predicted_out_of_tolerance(fit, -1.0, 1.0, 0.1, confidence=1.0)
    with pytest.raises(DriftFitError):
        predict_out_of_tolerance([0.0, 1.0], [0.0], -1.0, 1.0, 0.1)
    with pytest.raises(DriftFitError):
        student_t_factor(0.95, 0, two_sided=True)
    assert student_t_factor(0.95, 10, two_sided=True) == pytest.approx(stats.t.ppf(0.975, 10))
