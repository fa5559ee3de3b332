"""Change detectors: published worked examples, run lengths, and state invariants."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrology.detectors import (
    Baseline,
    ChartError,
    CusumChart,
    CusumState,
    EwmaChart,
    EwmaState,
    PageHinkleyChart,
    PageHinkleyState,
    WarmUp,
    cusum_average_run_length,
    cusum_siegmund_average_run_length,
    ewma_average_run_length,
)
from metrology.errors import MetrologyError

# NIST/SEMATECH e-Handbook of Statistical Methods, §6.3.2.4 "EWMA Control Charts", example.
NIST_DATA = [52.0, 47.0, 53.0, 49.3, 50.1, 47.0, 51.0, 50.1, 51.2, 50.5,
             49.6, 47.6, 49.9, 51.3, 47.8, 51.2, 52.6, 52.4, 53.6, 52.1]  # fmt: skip
NIST_EWMA = [50.60, 49.52, 50.56, 50.18, 50.16, 49.21, 49.75, 49.85, 50.26, 50.33,
             50.11, 49.36, 49.52, 50.05, 49.38, 49.92, 50.73, 51.23, 51.94, 51.99]  # fmt: skip

# Montgomery, Introduction to Statistical Quality Control, Example 9.1 / Tables 9.1-9.2:
# 20 readings from N(10, 1), then 10 after the mean moved to 11.
MONTGOMERY_DATA = [9.45, 7.99, 9.29, 11.66, 12.16, 10.18, 8.04, 11.46, 9.20, 10.34,
                   9.03, 11.47, 10.51, 9.40, 10.08, 9.37, 10.62, 10.31, 8.52, 10.84,
                   10.90, 9.33, 12.29, 11.50, 10.60, 11.08, 10.38, 11.62, 11.31, 10.52]  # fmt: skip
MONTGOMERY_C_PLUS = [0.0, 0.0, 0.0, 1.16, 2.82, 2.50, 0.04, 1.00, 0.0, 0.0,
                     0.0, 0.97, 0.98, 0.0, 0.0, 0.0, 0.12, 0.0, 0.0, 0.34,
                     0.74, 0.0, 1.79, 2.79, 2.89, 3.47, 3.35, 4.47, 5.28, 5.30]  # fmt: skip
MONTGOMERY_C_MINUS = [0.05, 1.56, 1.77, 0.0, 0.0, 0.0, 1.46, 0.0, 0.30, 0.0,
                      0.47, 0.0, 0.0, 0.10, 0.0, 0.13, 0.0, 0.0, 0.98, 0.0,
                      0.0, 0.17, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # fmt: skip


def test_nist_ewma_example_reproduces_the_table_and_limits() -> None:
    """NIST/SEMATECH e-Handbook §6.3.2.4 (https://www.itl.nist.gov/div898/handbook/pmc/section3/pmc324.htm).

    EWMA_0 = 50, s = 2.0539, lambda = 0.3, k = 3: the handbook's EWMA column (2 decimals),
    UCL = 52.5884, LCL = 47.4115 (printed truncated; exact 47.41155), no point out of control.
    The handbook uses the asymptotic limits; the exact time-varying limit has converged to them
    (to 1e-6) by the 20th reading.
    """
    baseline = Baseline(mean=50.0, sigma=2.0539)
    chart = EwmaChart(smoothing=0.3, limit_width=3.0)
    state = EwmaState()
    statistics = []
    for x in NIST_DATA:
        state = state.update(x, baseline, chart)
        statistics.append(state.statistic)
        assert not state.signals(baseline, chart)
    assert [round(z, 2) for z in statistics] == NIST_EWMA  # type: ignore[arg-type]
    half = state.asymptotic_limit(baseline, chart)
    assert baseline.mean + half == pytest.approx(52.5884, abs=5e-5)
    assert baseline.mean - half == pytest.approx(47.4115, abs=1e-4)
    assert state.limit(baseline, chart) == pytest.approx(half, rel=1e-6)


def test_ewma_first_limit_is_lambda_times_sigma_width() -> None:
    """At i = 1 the exact limit factor is sqrt(lambda/(2-lambda) (1-(1-lambda)^2)) = lambda."""
    baseline, chart = Baseline(0.0, 2.0), EwmaChart(0.3, 3.0)
    state = EwmaState().update(0.0, baseline, chart)
    assert state.limit(baseline, chart) == pytest.approx(3.0 * 2.0 * 0.3)
    assert EwmaState().limit(baseline, chart) == 0.0
    assert not EwmaState().signals(baseline, chart)


def test_montgomery_tabular_cusum_example_9_1() -> None:
    """Montgomery, Introduction to SQC, Example 9.1, Table 9.2: mu0 = 10, sigma = 1, K = 0.5, H = 5.

    C+ is the column printed in Table 9.2; C- is the direct recursion of eq. 9.3 on the same
    data (it agrees with the table's C- entries we could check: 0.05, 1.56, 1.77). The first
    signal is C+_29 = 5.28 > 5 at observation 29.
    """
    baseline, chart = Baseline(10.0, 1.0), CusumChart(reference_k=0.5, decision_h=5.0)
    state = CusumState()
    highs, lows, first_signal = [], [], None
    for i, x in enumerate(MONTGOMERY_DATA, start=1):
        state = state.update(x, baseline, chart)
        highs.append(round(state.high, 2))
        lows.append(round(state.low, 2))
        if first_signal is None and state.signals(baseline, chart):
            first_signal = i
    assert highs == MONTGOMERY_C_PLUS
    assert lows == MONTGOMERY_C_MINUS
    assert first_signal == 29
    assert state.signals_high(baseline, chart) and not state.signals_low(baseline, chart)


def test_cusum_head_start_applies_to_the_first_update_only() -> None:
    """Lucas & Crosier (1982) FIR: S_0 = head_start * H * sigma, in the measurand's unit."""
    baseline, chart = Baseline(1.0, 2.0), CusumChart(0.5, 4.0, head_start=0.5)
    first = CusumState().update(1.0, baseline, chart)
    assert first.high == pytest.approx(0.5 * 4.0 * 2.0 - 0.5 * 2.0)
    assert first.low == pytest.approx(first.high)
    second = first.update(1.0, baseline, chart)
    assert second.high == pytest.approx(first.high - 0.5 * 2.0)


def test_markov_chain_arls_match_published_tables() -> None:
    """Montgomery, Introduction to SQC, Table 9.3 (tabular CUSUM, k = 0.5, h = 5): ARL 465 in
    control, 10.4 for a 1-sigma shift, 38.0 for 0.5 sigma. Lucas & Saccucci (1990) / Montgomery
    Table 9.11 (EWMA, lambda = 0.1, L = 2.814): ARL0 500, 10.3 for a 1-sigma shift.
    Siegmund's approximation for the CUSUM: 469 (computed from eq. 9.5)."""
    cusum = CusumChart()
    assert cusum_average_run_length(cusum) == pytest.approx(465, rel=0.005)
    assert cusum_average_run_length(cusum, 1.0) == pytest.approx(10.4, rel=0.01)
    assert cusum_average_run_length(cusum, 0.5) == pytest.approx(38.0, rel=0.02)
    assert cusum_siegmund_average_run_length(cusum) == pytest.approx(469.1, rel=0.001)
    ewma = EwmaChart(smoothing=0.1, limit_width=2.814)
    assert ewma_average_run_length(ewma) == pytest.approx(500, rel=0.01)
    assert ewma_average_run_length(ewma, 1.0) == pytest.approx(10.3, rel=0.02)


def test_default_chart_arls_are_those_documented() -> None:
    """The ARL0 figures stated in the EwmaChart / CusumChart docstrings."""
    assert ewma_average_run_length(EwmaChart()) == pytest.approx(841, rel=0.01)
    assert cusum_average_run_length(CusumChart()) == pytest.approx(465, rel=0.01)
    assert cusum_average_run_length(CusumChart(head_start=0.5), 1.0) == pytest.approx(6.3, rel=0.02)


def _signals_on(series: np.ndarray, make, update, signals) -> int:  # type: ignore[no-untyped-def]
    """Count signals, restarting the detector after each (as an operator would after a check)."""
    state, count = make(), 0
    for x in series:
        state = update(state, float(x))
        if signals(state):
            count += 1
            state = make()
    return count


IN_CONTROL = np.random.default_rng(20240601).standard_normal(20_000) * 0.3 + 1.5
BASELINE = Baseline(mean=1.5, sigma=0.3)


def test_cusum_false_alarm_rate_on_stationary_noise_matches_its_arl() -> None:
    """20k in-control readings, ARL0 465: about 43 alarms expected; generous Poisson bounds."""
    chart = CusumChart()
    expected = IN_CONTROL.size / cusum_average_run_length(chart)
    count = _signals_on(
        IN_CONTROL,
        CusumState,
        lambda s, x: s.update(x, BASELINE, chart),
        lambda s: s.signals(BASELINE, chart),
    )
    assert 0.4 * expected <= count <= 2.0 * expected, (count, expected)


def test_ewma_false_alarm_rate_on_stationary_noise_matches_its_arl() -> None:
    """20k in-control readings, ARL0 about 840: about 24 alarms expected."""
    chart = EwmaChart()
    expected = IN_CONTROL.size / ewma_average_run_length(chart)
    count = _signals_on(
        IN_CONTROL,
        EwmaState,
        lambda s, x: s.update(x, BASELINE, chart),
        lambda s: s.signals(BASELINE, chart),
    )
    assert 0.3 * expected <= count <= 2.5 * expected, (count, expected)


def test_page_hinkley_false_alarm_rate_is_about_the_documented_arl() -> None:
    """Documented ARL0 about 500 (simulation): 20k readings give about 40 alarms."""
    chart = PageHinkleyChart()
    count = _signals_on(
        IN_CONTROL,
        PageHinkleyState,
        lambda s, x: s.update(x, BASELINE, chart),
        lambda s: s.signals(BASELINE, chart),
    )
    expected = IN_CONTROL.size / 500
    assert 0.3 * expected <= count <= 2.5 * expected, (count, expected)


@pytest.mark.parametrize("shift", [-1.0, 1.0])
def test_detectors_find_a_one_sigma_step_quickly(shift: float) -> None:
    """A 1-sigma step: CUSUM and EWMA ARLs are about 10-11 readings; allow 60."""
    rng = np.random.default_rng(7)
    data = 1.5 + 0.3 * (rng.standard_normal(200) + shift)
    cusum_chart, ewma_chart, ph_chart = CusumChart(), EwmaChart(), PageHinkleyChart(min_count=1)
    cusum, ewma, ph = CusumState(), EwmaState(), PageHinkleyState()
    found: dict[str, int] = {}
    for i, x in enumerate(data, start=1):
        cusum = cusum.update(x, BASELINE, cusum_chart)
        ewma = ewma.update(x, BASELINE, ewma_chart)
        ph = ph.update(x - 0.3 * shift * (i <= 20), BASELINE, ph_chart)  # PH sees a step at 21
        if cusum.signals(BASELINE, cusum_chart):
            found.setdefault("cusum", i)
        if ewma.signals(BASELINE, ewma_chart):
            found.setdefault("ewma", i)
        if ph.signals(BASELINE, ph_chart):
            found.setdefault("ph", i)
    assert found["cusum"] <= 60
    assert found["ewma"] <= 60
    assert 20 < found["ph"] <= 120


def test_page_hinkley_matches_its_definition() -> None:
    """high_T = m_T - min_(t<=T) m_t, m_T = sum (x_t - xbar_t - delta) (Page 1954; Hinkley 1971)."""
    rng = np.random.default_rng(3)
    data = rng.standard_normal(300) + np.linspace(0.0, 2.0, 300)
    baseline, chart = Baseline(0.0, 1.0), PageHinkleyChart(delta=0.25, threshold=8.0)
    state = PageHinkleyState()
    m_up, m_down, min_up, max_down = 0.0, 0.0, 0.0, 0.0
    for t, x in enumerate(data, start=1):
        state = state.update(x, baseline, chart)
        xbar = float(np.mean(data[:t]))
        m_up += x - xbar - 0.25
        m_down += x - xbar + 0.25
        min_up, max_down = min(min_up, m_up), max(max_down, m_down)
        assert state.high == pytest.approx(m_up - min_up, abs=1e-9)
        assert state.low == pytest.approx(max_down - m_down, abs=1e-9)
    assert state.mean == pytest.approx(float(np.mean(data)))
    assert state.signals(baseline, chart)


@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=60))
def test_warm_up_equals_numpy_mean_and_sample_sd(values: list[float]) -> None:
    """Welford's running moments equal the batch mean and n-1 standard deviation."""
    warm_up = WarmUp()
    for x in values:
        warm_up = warm_up.add(x)
    scale = max(1.0, max(abs(x) for x in values))
    assert warm_up.n == len(values)
    assert warm_up.mean == pytest.approx(float(np.mean(values)), abs=1e-9 * scale)
    sd = warm_up.standard_deviation
    assert sd is not None
    assert sd == pytest.approx(float(np.std(values, ddof=1)), rel=1e-6, abs=1e-7 * scale)


def test_warm_up_baseline_uses_the_floor_and_needs_two_readings() -> None:
    with pytest.raises(ChartError):
        WarmUp().add(1.0).baseline(0.1)
    quiet = WarmUp().add(1.0).add(1.0).add(1.0)
    assert quiet.baseline(0.25) == Baseline(1.0, 0.25)
    noisy = WarmUp().add(0.0).add(2.0)
    assert noisy.baseline(0.1) == Baseline(1.0, math.sqrt(2.0))
    with pytest.raises(ChartError):
        quiet.baseline(0.0)  # no scatter and no floor: no baseline can be built


@pytest.mark.parametrize(
    "build",
    [
        lambda: EwmaChart(smoothing=0.0),
        lambda: EwmaChart(smoothing=1.5),
        lambda: EwmaChart(limit_width=-1.0),
        lambda: CusumChart(reference_k=-0.1),
        lambda: CusumChart(decision_h=0.0),
        lambda: CusumChart(head_start=1.0),
        lambda: PageHinkleyChart(threshold=0.0),
        lambda: PageHinkleyChart(min_count=0),
        lambda: Baseline(0.0, 0.0),
        lambda: Baseline(math.nan, 1.0),
    ],
)
def test_invalid_parameters_are_refused(build) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ChartError) as info:
        build()
    assert isinstance(info.value, MetrologyError) and isinstance(info.value, ValueError)


def test_states_are_plain_values_that_round_trip_through_asdict() -> None:
    """Faust tables store the state as a dict; Cls(**d) must give it back, as plain floats."""
    baseline = Baseline(0.0, 1.0)
    states: list[Any] = [
        WarmUp().add(np.float64(1.0)).add(2.0),
        EwmaState().update(np.float64(0.5), baseline, EwmaChart()),
        CusumState().update(np.float64(2.0), baseline, CusumChart(head_start=0.5)),
        PageHinkleyState().update(np.float64(0.5), baseline, PageHinkleyChart()),
        baseline,
    ]
    for state in states:
        data = state._asdict() if hasattr(state, "_asdict") else dataclasses.asdict(state)
        assert type(state)(**data) == state
        assert all(type(v) in (int, float) or v is None for v in data.values()), data
        with pytest.raises(AttributeError):  # FrozenInstanceError is an AttributeError too
            setattr(state, next(iter(data)), 5)


def test_updates_return_new_states() -> None:
    baseline = Baseline(0.0, 1.0)
    ewma = EwmaState()
    assert ewma.update(1.0, baseline, EwmaChart()) is not ewma
    assert ewma == EwmaState()


def test_siegmund_arl_does_not_overflow() -> None:
    """Large K * H: the in-control run length is beyond float range, reported as inf."""
    assert cusum_siegmund_average_run_length(CusumChart(3.0, 150.0)) == math.inf
    assert cusum_siegmund_average_run_length(CusumChart(3.0, 150.0), 3.0) == pytest.approx(
        (150.0 + 1.166) ** 2, rel=1e-9
    )
