"""Hours in use from telemetry timestamps (ILAC-G24:2022 Method 3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrology.usage import UsageCounter, UsageError, due_by_usage

T0 = 1_700_000_000.0
PERIOD = 60.0  # the instrument reports once a minute


def count(timestamps: list[float], period_s: float = PERIOD, k: float = 3.0) -> UsageCounter:
    counter = UsageCounter()
    for ts in timestamps:
        counter = counter.observe(ts, period_s, k)
    return counter


def test_worked_example_gaps_beyond_k_periods_are_downtime() -> None:
    """ILAC-G24 Method 3 with k = 3 and a 60 s period (gaps up to 180 s count).

    Two hours of readings every 60 s (121 readings: 7 200 s in use), a 4 h outage, then half
    an hour every 120 s (a lost message every other one; 16 readings: 1 800 s in use):
    (7 200 + 1 800) s = 2.5 h in use out of 6.5 h wall time.
    """
    first = [T0 + 60.0 * i for i in range(121)]
    restart = first[-1] + 4 * 3600.0
    second = [restart + 120.0 * i for i in range(16)]
    counter = count(first + second)
    assert counter.hours_in_use == pytest.approx(2.5, rel=1e-12)
    assert counter.last_seen == second[-1]
    assert (second[-1] - T0) / 3600.0 == pytest.approx(6.5)


def test_gap_exactly_k_periods_counts_and_just_over_does_not() -> None:
    assert count([T0, T0 + 180.0]).hours_in_use == pytest.approx(180.0 / 3600.0)
    assert count([T0, T0 + 180.5]).hours_in_use == 0.0


def test_duplicates_and_out_of_order_readings_change_nothing() -> None:
    counter = count([T0, T0 + 60.0])
    assert counter.observe(T0 + 60.0, PERIOD) is counter
    assert counter.observe(T0 + 30.0, PERIOD) is counter


def test_first_reading_only_sets_last_seen() -> None:
    assert UsageCounter().observe(T0, PERIOD) == UsageCounter(0.0, T0)
    # A counter restored from storage continues from its hours.
    assert UsageCounter(10.0, T0).observe(T0 + 36.0, PERIOD).hours_in_use == pytest.approx(10.01)


def test_validation() -> None:
    with pytest.raises(UsageError):
        UsageCounter(-1.0)
    with pytest.raises(UsageError):
        UsageCounter().observe(T0, 0.0)
    with pytest.raises(UsageError):
        UsageCounter().observe(T0, PERIOD, max_gap_periods=0.5)
    with pytest.raises(UsageError):
        UsageCounter().observe(float("nan"), PERIOD)
    with pytest.raises(UsageError):
        due_by_usage(1.0, 0.0)


def test_due_by_usage() -> None:
    """Due when the hours in use reach the interval in hours (ILAC-G24 Method 3)."""
    assert not due_by_usage(1999.9, 2000.0)
    assert due_by_usage(2000.0, 2000.0)
    assert due_by_usage(2500.0, 2000.0)


@given(
    st.lists(st.floats(0.0, 1e6).map(lambda v: T0 + round(v, 3)), min_size=1, max_size=200),
    st.floats(1.0, 3600.0),
    st.floats(1.0, 10.0),
)
def test_hours_never_exceed_wall_time(timestamps: list[float], period: float, k: float) -> None:
    """In any order, with any gaps: hours in use <= (latest - first reading) / 3600."""
    counter = count(timestamps, period, k)
    wall_hours = (max(timestamps) - timestamps[0]) / 3600.0
    assert counter.last_seen == max(timestamps)
    assert 0.0 <= counter.hours_in_use <= wall_hours * (1 + 1e-12)


@given(st.lists(st.floats(0.5, 2.9), min_size=1, max_size=100))
def test_regular_reporting_counts_all_wall_time(gaps_in_periods: list[float]) -> None:
    """Every gap within k periods: hours in use equal the wall time exactly (up to rounding)."""
    timestamps = [T0]
    for gap in gaps_in_periods:
        timestamps.append(timestamps[-1] + gap * PERIOD)
    counter = count(timestamps)
    assert counter.hours_in_use == pytest.approx((timestamps[-1] - T0) / 3600.0, rel=1e-9)
