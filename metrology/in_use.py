"""The tolerance limits of the values an instrument measures in use.

A tolerance relative to the reading ("a + b % of reading") is tightest where the process runs
lowest, so whether a drifting error is still within tolerance depends on the values being
measured. :class:`InUseLimits` keeps, for one calibration period:

- the tightest limits of every value measured in use: what a conservative prediction is judged
  against;
- the tightest of the recent ones (the current and the previous window of ``window`` seconds,
  two buckets, so "recent" spans one to two windows): the values the process keeps visiting,
  what a best estimate of the date the error leaves tolerance is judged against;
- the mean and standard deviation of each closed window's tightest limits (Welford's method):
  how much the limit that will apply when the error gets there varies from window to window,
  a standard uncertainty of that limit (a Type A evaluation, JCGM 100:2008 §4.2).

The state is O(1) whatever the length of the period.
"""

from __future__ import annotations

import math
from typing import NamedTuple

__all__ = ["InUseLimits", "tighter"]

Limits = tuple[float | None, float | None]


def tighter(a: Limits, b: Limits) -> Limits:
    """The tighter of two (lower, upper) pairs, side by side (``None``: no limit known)."""
    lower = b[0] if a[0] is None or (b[0] is not None and b[0] > a[0]) else a[0]
    upper = b[1] if a[1] is None or (b[1] is not None and b[1] < a[1]) else a[1]
    return lower, upper


def _welford(count: int, mean: float, m2: float, x: float | None) -> tuple[float, float]:
    if x is None:
        return mean, m2
    delta = x - mean
    mean += delta / count
    return mean, m2 + delta * (x - mean)


class InUseLimits(NamedTuple):
    """Tightest limits of the values measured in use: over the period, recently, per window."""

    lower: float | None = None
    upper: float | None = None
    """Tightest over the period."""
    window_start: float | None = None
    """Start of the current window (epoch seconds)."""
    current_lower: float | None = None
    current_upper: float | None = None
    previous_lower: float | None = None
    previous_upper: float | None = None
    windows: int = 0
    """Closed windows behind the statistics below."""
    mean_lower: float = 0.0
    m2_lower: float = 0.0
    mean_upper: float = 0.0
    m2_upper: float = 0.0

    def add(
        self, ts: float, lower: float | None, upper: float | None, window: float
    ) -> InUseLimits:
        """With the limits of one value measured in use at ``ts`` (times must not decrease)."""
        tightest = tighter((self.lower, self.upper), (lower, upper))
        if self.window_start is None:
            return self._replace(
                lower=tightest[0], upper=tightest[1], window_start=ts, current_lower=lower,
                current_upper=upper,
            )  # fmt: skip
        if ts - self.window_start >= window:
            windows = self.windows + 1
            return InUseLimits(
                *tightest, ts, lower, upper, self.current_lower, self.current_upper, windows,
                *_welford(windows, self.mean_lower, self.m2_lower, self.current_lower),
                *_welford(windows, self.mean_upper, self.m2_upper, self.current_upper),
            )  # fmt: skip
        current = tighter((self.current_lower, self.current_upper), (lower, upper))
        if tightest == (self.lower, self.upper) and current == (
            self.current_lower,
            self.current_upper,
        ):
            return self
        return self._replace(
            lower=tightest[0], upper=tightest[1], current_lower=current[0],
            current_upper=current[1],
        )  # fmt: skip

    @property
    def tightest(self) -> Limits:
        return self.lower, self.upper

    @property
    def recent(self) -> Limits:
        """Tightest over the current and the previous window."""
        return tighter(
            (self.current_lower, self.current_upper), (self.previous_lower, self.previous_upper)
        )

    def limit_uncertainty(self, upper: bool) -> float:
        """Standard uncertainty of the upper (or lower) limit that will apply when the error
        reaches it: the spread of the windows' tightest limits; before three windows, the
        tightest and the recent limit as the bounds of a rectangular distribution (JCGM
        100:2008 §4.3.7); 0 when no value in use was measured."""
        spread = self.window_spread(upper)
        if spread is not None:
            return spread
        tightest = self.upper if upper else self.lower
        recent = self.recent[1 if upper else 0]
        if tightest is None or recent is None:
            return 0.0
        return abs(recent - tightest) / (2.0 * math.sqrt(3.0))

    def window_spread(self, upper: bool) -> float | None:
        """Standard deviation of the closed windows' tightest upper (or lower) limits; ``None``
        before three windows closed."""
        if self.windows < 3:
            return None
        m2 = self.m2_upper if upper else self.m2_lower
        return math.sqrt(max(m2, 0.0) / (self.windows - 1))
