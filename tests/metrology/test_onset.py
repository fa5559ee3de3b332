"""The two-phase drift fit (metrology.onset): bounded state, exact on clean data, the same fit
as an independent least-squares solver, and uncertainties that match the scatter they claim.

Sources: the continuous two-phase line (Hudson 1966, JASA 61:1097; Hinkley 1969, Biometrika
56:495); the onset's share of the covariance by linearisation (Muggeo 2003, Statistics in
Medicine 22:3055); the wander's covariance and prediction (Goldberger 1962, JASA 57:369).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrology.drift import DriftFit, DriftFitError
from metrology.onset import MAX_BINS, DriftRecord, fit_onset


def record_of(times: np.ndarray, errors: np.ndarray) -> DriftRecord:
    record = DriftRecord()
    for t, e in zip(times, errors, strict=True):
        record = record.add(float(t), float(e))
    return record


def hinge(t: np.ndarray, level: float, rate: float, onset: float) -> np.ndarray:
    return level + rate * np.maximum(t - onset, 0.0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.0, 20.0), min_size=1, max_size=400),
    st.lists(st.floats(-5.0, 5.0), min_size=400, max_size=400),
)
def test_bins_stay_bounded_and_keep_every_sum(steps: list[float], errors: list[float]) -> None:
    times = np.cumsum(steps)
    values = np.array(errors[: len(times)])
    record = record_of(times, values)
    bins = record.all_bins()
    assert len(bins) <= MAX_BINS + 1
    assert record.points == len(times)
    assert sum(b[2] for b in bins) == pytest.approx(times.sum(), rel=1e-9, abs=1e-9)
    relative = values - values[0]
    assert sum(b[4] for b in bins) == pytest.approx(relative.sum(), rel=1e-9, abs=1e-9)
    assert record.squares == pytest.approx(float(np.sum(relative**2)), rel=1e-9, abs=1e-9)
    indexes = [b[0] for b in bins]
    assert indexes == sorted(set(indexes))  # in time order, one bin per index
    for index, n, t1, *_ in bins:  # every point lies in its bin
        assert index * record.width <= t1 / n < (index + 1) * record.width + 1e-9


def test_a_point_before_the_last_one_is_refused() -> None:
    record = DriftRecord().add(5.0, 0.1)
    with pytest.raises(DriftFitError, match="before the record's last point"):
        record.add(4.0, 0.1)


def test_a_long_record_merges_bins_and_doubles_the_width() -> None:
    record = record_of(np.arange(0.0, 300.0, 0.25), np.zeros(1200))
    assert record.width == 8.0  # 1 -> 2 -> 4 -> 8 days: 300 d in at most 64 bins
    assert len(record.all_bins()) == 38


def test_noiseless_onset_level_rate_and_crossing_are_exact() -> None:
    t = np.arange(0.0, 150.0, 1.0 / 24.0)
    e = hinge(t, 0.01, 0.004, 64.0)  # onset on a bin boundary at every width up to 64 d
    fit = fit_onset(record_of(t, e))
    assert fit is not None and not fit.from_start
    assert fit.onset == pytest.approx(64.0)
    assert fit.level == pytest.approx(0.01, abs=1e-9)
    assert fit.rate == pytest.approx(0.004, rel=1e-9)
    assert fit.diffusion == 0.0 and fit.wander == 0.0
    # 0.01 + 0.004 (t - 64) = 0.5 at t = 186.5; a lower limit is not approached
    assert fit.crossing(-0.5, 0.5) == pytest.approx(186.5, rel=1e-9)
    assert fit.crossing(-0.5, None) is None
    assert fit.error_at(186.5) == pytest.approx(0.5, rel=1e-9)


def test_a_drift_since_calibration_is_the_plain_line() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(0.5, 90.0, 0.5)
    e = 0.02 + 0.003 * t + rng.normal(0.0, 0.01, len(t))
    fit = fit_onset(record_of(t, e))
    line = DriftFit()
    for ti, ei in zip(t, e, strict=True):
        line = line.add(ti, ei)
    assert fit is not None and fit.from_start
    assert fit.rate == pytest.approx(line.slope, rel=1e-6)
    assert fit.error_at(fit.onset) == pytest.approx(line.intercept + line.slope * fit.onset)
    assert fit.rate_standard_uncertainty == pytest.approx(line.slope_standard_error, rel=1e-6)


def test_profile_onset_agrees_with_an_independent_least_squares_search() -> None:
    """numpy's lstsq on every point, for every bin boundary: the same onset, level, rate."""
    rng = np.random.default_rng(11)
    t = np.sort(rng.uniform(0.0, 120.0, 900))
    e = hinge(t, -0.02, 0.006, 71.3) + rng.normal(0.0, 0.03, len(t))
    record = record_of(t, e)
    fit = fit_onset(record)
    assert fit is not None
    best = None
    for index, *_ in record.all_bins()[1:-1]:
        onset = index * record.width
        design = np.column_stack([np.ones_like(t), np.maximum(t - onset, 0.0)])
        coef, sse, *_ = np.linalg.lstsq(design, e, rcond=None)
        if best is None or sse[0] < best[0]:
            best = (float(sse[0]), onset, *coef)
    assert best is not None
    assert fit.onset == best[1]
    assert fit.level == pytest.approx(best[2], abs=1e-9)
    assert fit.rate == pytest.approx(best[3], rel=1e-9)
    assert abs(fit.onset - 71.3) <= record.width


def _z_scores(period: float, walk: float, trials: int, seed: int) -> np.ndarray:
    """(estimated - true crossing) / stated u over independent records of one design."""
    rng = np.random.default_rng(seed)
    zs = []
    for _ in range(trials):
        t = np.arange(0.0, 160.0, period)
        wander = np.cumsum(rng.normal(0.0, walk * math.sqrt(period), len(t) + 2400))
        future = np.arange(0.0, 160.0 + 2400 * period, period)[: len(wander)]
        wander -= np.interp(100.0, future, wander)
        path = hinge(future, 0.0, 0.01, 100.0) + np.where(future > 100.0, wander, 0.0)
        e = np.interp(t, future, path) + rng.normal(0.0, 0.08, len(t))
        fit = fit_onset(record_of(t, e))
        assert fit is not None
        crossing = fit.crossing(None, 1.0)
        assert crossing is not None
        true = future[np.argmax(path > 1.0)]
        zs.append((crossing - true) / fit.crossing_standard_uncertainty(crossing))
    return np.array(zs)


@pytest.mark.parametrize(
    ("period", "walk", "median_abs_z"),
    [
        (1.0, 0.0, (0.45, 0.95)),  # daily check standard, white noise
        (1.0 / 24.0, 0.0, (0.25, 0.95)),  # hourly reference: the onset's share dominates
        (1.0 / 24.0, 0.01, (0.45, 1.2)),  # a drift of uneven pace: the wander is estimated
    ],
)
def test_stated_uncertainty_matches_the_scatter_of_the_crossing(
    period: float, walk: float, median_abs_z: tuple[float, float]
) -> None:
    """For a normal error the median |z| is 0.674: the stated u is neither a fraction nor a
    multiple of the real scatter (the walk case without its wander term gives about 1.9)."""
    zs = _z_scores(period, walk, 150, seed=2026)
    low, high = median_abs_z
    assert low < float(np.median(np.abs(zs))) < high
    assert abs(float(np.mean(zs))) < 0.5


def test_a_random_walk_is_seen_and_widens_the_uncertainty() -> None:
    rng = np.random.default_rng(5)
    t = np.arange(0.0, 160.0, 1.0 / 24.0)
    walk = np.cumsum(rng.normal(0.0, 0.02 * math.sqrt(1.0 / 24.0), len(t)))
    e = hinge(t, 0.0, 0.01, 60.0) + np.where(t > 60.0, walk - np.interp(60.0, t, walk), 0.0)
    e += rng.normal(0.0, 0.05, len(t))
    fit = fit_onset(record_of(t, e))
    assert fit is not None
    assert 0.2 * 0.02**2 < fit.diffusion < 5.0 * 0.02**2  # true q = 4e-4 per day
    # the wander still to come: u grows with the horizon at least as fast as sqrt(q h)
    near, far = fit.error_uncertainty(170.0), fit.error_uncertainty(260.0)
    assert far**2 - near**2 >= 0.9 * fit.diffusion * 90.0


def test_limit_uncertainty_adds_in_quadrature() -> None:
    t = np.arange(0.0, 120.0, 0.25)
    e = hinge(t, 0.0, 0.005, 40.0) + np.random.default_rng(1).normal(0.0, 0.02, len(t))
    fit = fit_onset(record_of(t, e))
    assert fit is not None
    crossing = fit.crossing(-0.4, 0.4)
    assert crossing is not None
    u_fit = fit.crossing_standard_uncertainty(crossing)
    u_both = fit.crossing_standard_uncertainty(crossing, limit_uncertainty=0.03)
    assert u_both == pytest.approx(math.hypot(u_fit, 0.03 / fit.rate), rel=1e-12)


def test_no_fit_without_enough_drift_points() -> None:
    assert fit_onset(DriftRecord()) is None
    assert fit_onset(record_of(np.array([0.0, 1.0, 2.0]), np.zeros(3))) is None
    with pytest.raises(DriftFitError):
        fit_onset(DriftRecord(), min_drift_points=2)
