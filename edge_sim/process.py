"""The true value of the measurand at a measuring point, as a deterministic function of time.

A process variable in a plant moves slowly: a daily cycle (shifts, ambient temperature), a slower
cycle of a few days (batches, weather) and an irregular wander. The model is the sum of two
sinusoids and a bounded random walk drawn once on an hourly grid and interpolated linearly, so the
value at any time is a pure function of that time: peers at one measuring point read the same
value at the same instant, and truth can be evaluated anywhere without replaying the simulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from metrology.timebase import SECONDS_PER_DAY, SECONDS_PER_HOUR

FloatArray = npt.NDArray[np.float64]

_MARGIN = 0.05
"""Fraction of the span kept free at both ends of the measuring range."""


@dataclass(frozen=True, slots=True)
class ProcessModel:
    """True value ``x(t) = level + a_d sin(w_d t + p_d) + a_s sin(w_s t + p_s) + walk(t)``."""

    low: float
    high: float
    level: float
    daily_amplitude: float
    daily_phase: float
    slow_amplitude: float
    slow_period_s: float
    slow_phase: float
    walk_times: FloatArray
    walk_values: FloatArray

    @classmethod
    def draw(
        cls, rng: np.random.Generator, low: float, high: float, start: float, end: float
    ) -> ProcessModel:
        """A process inside ``[low, high]`` over ``[start, end]``, drawn from ``rng``."""
        span = high - low
        level = low + span * float(rng.uniform(0.35, 0.65))
        daily = span * float(rng.uniform(0.02, 0.08))
        slow = span * float(rng.uniform(0.02, 0.08))
        hours = max(2, math.ceil((end - start) / SECONDS_PER_HOUR) + 2)
        times = start - SECONDS_PER_HOUR + SECONDS_PER_HOUR * np.arange(hours, dtype=np.float64)
        bound = span * 0.1
        steps = rng.normal(0.0, span * 0.004, hours)
        walk = np.clip(np.cumsum(steps), -bound, bound)
        return cls(
            low=low,
            high=high,
            level=level,
            daily_amplitude=daily,
            daily_phase=float(rng.uniform(0.0, 2 * math.pi)),
            slow_amplitude=slow,
            slow_period_s=SECONDS_PER_DAY * float(rng.uniform(3.0, 11.0)),
            slow_phase=float(rng.uniform(0.0, 2 * math.pi)),
            walk_times=times,
            walk_values=walk,
        )

    def value_at(self, ts: FloatArray) -> FloatArray:
        """The true value at each time of ``ts`` (epoch seconds), kept inside the range."""
        daily = ts * (2 * math.pi / SECONDS_PER_DAY) + self.daily_phase
        slow = ts * (2 * math.pi / self.slow_period_s) + self.slow_phase
        value = (
            self.level
            + self.daily_amplitude * np.sin(daily)
            + self.slow_amplitude * np.sin(slow)
            + np.interp(ts, self.walk_times, self.walk_values)
        )
        margin = (self.high - self.low) * _MARGIN
        return np.clip(value, self.low + margin, self.high - margin)
