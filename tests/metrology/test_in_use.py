"""Tolerance limits of the values measured in use (metrology.in_use): overall, recent, spread."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metrology.in_use import InUseLimits
from metrology.instrument import Tolerance

DAY = 86_400.0
WEEK = 7 * DAY
TOLERANCE = Tolerance(-0.1, 0.1, 0.01)  # 0.1 + 1 % of reading


def limits_over(values: np.ndarray, period: float = 3600.0) -> InUseLimits:
    limits = InUseLimits()
    for i, value in enumerate(values):
        limits = limits.add(i * period, *TOLERANCE.limits_at(float(value)), WEEK)
    return limits


def test_tightest_is_at_the_lowest_value_ever_and_recent_at_the_recent_lowest() -> None:
    hours = np.arange(24 * 7 * 6)
    # a process at 50 that dipped to 5 in its first week and now runs 30-40
    values = np.where(hours < 24 * 7, 5.0, 30.0 + 10.0 * (np.sin(hours / 24.0 * 2 * np.pi) > 0))
    limits = limits_over(values)
    assert limits.tightest == pytest.approx((-0.15, 0.15))
    assert limits.recent == pytest.approx((-0.4, 0.4))


def test_recent_spans_the_current_and_the_previous_window() -> None:
    limits = InUseLimits()
    limits = limits.add(0.0, -0.2, 0.2, WEEK)
    limits = limits.add(WEEK, -0.5, 0.5, WEEK)  # a new window: the first is now the previous
    assert limits.recent == (-0.2, 0.2)
    limits = limits.add(2 * WEEK, -0.6, 0.6, WEEK)  # the first window is out of "recent"
    assert limits.recent == (-0.5, 0.5)
    assert limits.tightest == (-0.2, 0.2)


def test_window_spread_is_the_standard_deviation_of_the_windows_tightest_limits() -> None:
    weekly_lows = [10.0, 14.0, 8.0, 12.0, 11.0]
    limits = InUseLimits()
    for week, low in enumerate(weekly_lows):
        for hour, value in enumerate((low + 20.0, low, low + 5.0)):
            limits = limits.add(week * WEEK + hour * 3600.0, *TOLERANCE.limits_at(value), WEEK)
    limits = limits.add(5 * WEEK, *TOLERANCE.limits_at(50.0), WEEK)  # closes the fifth week
    assert limits.windows == 5
    uppers = [0.1 + 0.01 * low for low in weekly_lows]
    assert limits.window_spread(upper=True) == pytest.approx(float(np.std(uppers, ddof=1)))
    assert limits.window_spread(upper=False) == pytest.approx(float(np.std(uppers, ddof=1)))


def test_no_spread_before_three_windows_and_one_sided_limits() -> None:
    limits = InUseLimits()
    for week in range(3):
        limits = limits.add(week * WEEK, None, 0.3 + week * 0.1, WEEK)
    assert limits.windows == 2
    assert limits.window_spread(upper=True) is None
    limits = limits.add(3 * WEEK, None, 0.3, WEEK)
    assert limits.window_spread(upper=True) == pytest.approx(0.1)
    assert limits.tightest == (None, 0.3)
    assert math.isclose(limits.mean_upper, 0.4)


def test_an_unchanged_reading_returns_the_same_state() -> None:
    limits = InUseLimits().add(0.0, -0.2, 0.2, WEEK)
    assert limits.add(60.0, -0.3, 0.3, WEEK) is limits  # looser, same window: nothing to keep


def test_limit_uncertainty_is_the_spread_or_a_rectangle_between_tightest_and_recent() -> None:
    limits = InUseLimits().add(0.0, -0.2, 0.2, WEEK).add(WEEK, -0.5, 0.5, WEEK)
    limits = limits.add(2 * WEEK, -0.5, 0.5, WEEK)  # recent 0.5, tightest 0.2, two windows
    assert limits.limit_uncertainty(upper=True) == pytest.approx(0.3 / (2 * math.sqrt(3)))
    limits = limits.add(3 * WEEK, -0.4, 0.4, WEEK)  # a third window closed: its spread
    assert limits.limit_uncertainty(upper=False) == limits.window_spread(upper=False)
    assert InUseLimits().limit_uncertainty(upper=True) == 0.0
