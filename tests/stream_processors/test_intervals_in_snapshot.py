"""Hours in use, interval recommendations and the best estimate of the date, in the snapshot."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from step_factories import (
    CALIBRATED_AT,
    HOUR,
    MPE,
    U_CAL,
    indication_for,
    make_record,
    make_spec,
)
from step_factories import readings_with_error as readings

from metrology.calibration import CalibrationHistory
from metrology.instrument import Tolerance
from metrology.intervals import StaircasePolicy, drift_based_interval, staircase_interval
from metrology.timebase import SECONDS_PER_DAY
from stream_processors.context import InstrumentContext
from stream_processors.describe import describe
from stream_processors.policy import ProcessingPolicy
from stream_processors.state import DriftTracking, InstrumentState
from stream_processors.step import step

RNG_SEED = 11


def run(context: InstrumentContext, batch):
    state = InstrumentState()
    for reading in batch:
        state, _, _ = step(state, reading, context)
    return state


def test_hours_in_use_count_reporting_gaps_but_not_downtime() -> None:
    record = make_record()
    context = InstrumentContext(make_spec(), CalibrationHistory([record]), ProcessingPolicy())
    first = readings(np.zeros(11), record)  # 10 hourly gaps
    # five days off (downtime, far beyond 3 reporting periods), then 5 more hourly gaps
    second = readings(np.zeros(6), record, start=first[-1].ts + 5 * SECONDS_PER_DAY)
    second = [r._replace(seq=r.seq + 100) for r in second]
    state = run(context, first + second)
    assert state.hours_in_use == pytest.approx(15.0)
    snapshot = describe(state, context, second[-1].ts)
    assert snapshot.numbers["hours_in_use"] == pytest.approx(15.0)


def test_drift_based_interval_in_the_snapshot_matches_the_metrology_function() -> None:
    record = make_record(interval_days=365.0)
    context = InstrumentContext(make_spec(), CalibrationHistory([record]), ProcessingPolicy())
    rng = np.random.default_rng(RNG_SEED)
    n = 24 * 60  # 60 days hourly
    t_days = np.arange(n) * HOUR / SECONDS_PER_DAY
    errors = 0.001 * t_days + rng.normal(0.0, 0.3 * U_CAL / 2, n)  # 1 mdegC/day
    state = run(context, readings(errors, record))
    numbers = describe(state, context, CALIBRATED_AT + 60 * SECONDS_PER_DAY).numbers
    expected = drift_based_interval(
        state.tracking.fit,
        -MPE,
        MPE,
        record.standard_uncertainty,
        0.95,
        min_points=30,
        significance=0.001,
        min_days=30.0,
        max_days=1826.0,
    )
    assert numbers["recommended_interval_days"] == pytest.approx(expected.interval_days)
    # the band meets +0.2 degC before the line does (0.2 / 0.001 = 200 d), and after 60 days
    assert 60.0 < numbers["recommended_interval_days"] < 200.0
    assert numbers["interval_days"] == 365.0
    assert "prediction band" in numbers["interval_reason"]
    assert numbers["staircase_interval_days"] is None
    assert numbers["staircase_reason"] == "the certificate states no as-found error"


def test_staircase_uses_the_as_found_error_and_the_instruments_policy() -> None:
    record = dataclasses.replace(make_record(interval_days=200.0), as_found_error=0.05)
    policy = StaircasePolicy(lengthen_factor=1.5)
    spec = make_spec(interval_policy=policy)
    context = InstrumentContext(spec, CalibrationHistory([record]), ProcessingPolicy())
    state = run(context, readings(np.zeros(3), record))
    numbers = describe(state, context, CALIBRATED_AT + 3 * HOUR).numbers
    # as found 25 % of MPE <= 80 %: lengthen x1.5
    assert numbers["staircase_interval_days"] == pytest.approx(300.0)
    assert numbers["staircase_reason"] == staircase_interval(200.0, 0.05, MPE, policy).reason
    # too few residuals for a drift-based one: it says why
    assert numbers["recommended_interval_days"] is None
    assert "too few points" in numbers["interval_reason"]


def test_best_estimate_waits_until_the_crossing_is_precise() -> None:
    """A noisy slow drift from the calibration on: the band may predict (AT_RISK) before the
    best estimate is given, and the first estimate states an uncertainty within the policy."""
    record = make_record(interval_days=365.0)
    policy = ProcessingPolicy()
    context = InstrumentContext(make_spec(), CalibrationHistory([record]), policy)
    rng = np.random.default_rng(RNG_SEED)
    n = 24 * 120
    t_days = np.arange(n) * HOUR / SECONDS_PER_DAY
    errors = 0.0012 * t_days + rng.normal(0.0, 2.0 * U_CAL / 2, n)
    state = InstrumentState()
    first: tuple[float, DriftTracking] | None = None
    for reading in readings(errors, record):
        state, _, _ = step(state, reading, context)
        if first is None and state.tracking.estimated_oot_at is not None:
            first = ((reading.ts - record.calibrated_at) / SECONDS_PER_DAY, state.tracking)
    assert first is not None
    now_days, tracking = first
    assert tracking.estimated_oot_at is not None and tracking.estimate_u_days is not None
    crossing_days = (tracking.estimated_oot_at - record.calibrated_at) / SECONDS_PER_DAY
    left = crossing_days - now_days
    assert 0.0 < tracking.estimate_u_days <= policy.estimate_precision * left
    # a drift since calibration: the two-phase fit puts the onset at the record's start
    assert tracking.drift_onset_at == pytest.approx(record.calibrated_at, abs=SECONDS_PER_DAY)
    assert left <= policy.estimate_max_extrapolation * now_days
    assert tracking.predicted_oot_at is not None
    assert tracking.predicted_oot_at <= tracking.estimated_oot_at
    # true crossing of +0.2 at 0.2 / 0.0012 = 166.7 d: within three stated uncertainties
    assert abs(crossing_days - 166.7) <= 3.0 * tracking.estimate_u_days
    final = (state.tracking.estimated_oot_at - record.calibrated_at) / SECONDS_PER_DAY
    assert final == pytest.approx(166.7, rel=0.05)


def test_a_relative_tolerance_is_predicted_against_the_lowest_value_measured() -> None:
    """MPE 0.1 + 1 % of reading: checked at 50 (limit 0.6), but the process runs at 10 (limit
    0.2). A drift of +2 m/day leaves tolerance in use on day 100, not on day 300."""
    record = make_record(interval_days=365.0)
    spec = make_spec(tolerance=Tolerance(-0.1, 0.1, 0.01))
    context = InstrumentContext(spec, CalibrationHistory([record]), ProcessingPolicy())
    rng = np.random.default_rng(RNG_SEED)
    n = 24 * 70
    t_days = np.arange(n) * HOUR / SECONDS_PER_DAY
    errors = 0.002 * t_days + rng.normal(0.0, 0.3 * U_CAL / 2, n)
    checks = readings(errors, record, true_value=50.0)
    process = [
        r._replace(value=indication_for(10.0, 0.0, record), reference=None, u_reference=None,
                   seq=r.seq + 100_000, ts=r.ts + 60.0)
        for r in checks
    ]  # fmt: skip
    state = InstrumentState()
    for check, in_use in zip(checks, process, strict=True):
        state, _, _ = step(state, check, context)
        state, _, _ = step(state, in_use, context)
    tracking = state.tracking
    assert tracking.in_use.upper == pytest.approx(0.1 + 0.01 * 10.0, rel=1e-3)
    assert state.judgement.upper == pytest.approx(0.1 + 0.01 * 50.0, rel=1e-3)
    assert tracking.estimated_oot_at is not None
    crossing = (tracking.estimated_oot_at - record.calibrated_at) / SECONDS_PER_DAY
    assert crossing == pytest.approx(100.0, rel=0.1)
    numbers = describe(state, context, process[-1].ts).numbers
    assert numbers["in_use_upper_limit"] == pytest.approx(0.2, rel=1e-3)
