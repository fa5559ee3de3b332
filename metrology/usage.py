"""Hours in use from telemetry, for in-use-time calibration intervals.

ILAC-G24:2022 / OIML D 10:2022 Method 3 ("in-use time"): the interval is counted in hours of
use rather than calendar time, so an instrument that sits idle ages less. Telemetry gives the
hours: the time between two consecutive readings counts as in use when the gap is at most
``max_gap_periods`` times the expected reporting period; a longer gap is downtime (the
instrument, its gateway or the process was off), and none of it counts. The state is O(1) per
instrument: the hours so far and the last timestamp seen.

A reported reading is taken as evidence of use. Where "in use" means more than "powered and
reporting" (a pump running, a process at temperature), feed only the readings taken in use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from metrology.errors import UsageError
from metrology.timebase import SECONDS_PER_HOUR

__all__ = [
    "DEFAULT_MAX_GAP_PERIODS",
    "UsageCounter",
    "UsageError",
    "due_by_usage",
    "hours_in_use_after",
]

DEFAULT_MAX_GAP_PERIODS = 3.0
"""A gap up to three reporting periods is a few lost messages; longer is downtime."""


def hours_in_use_after(
    hours_in_use: float,
    last_seen: float | None,
    ts: float,
    period_s: float,
    max_gap_periods: float = DEFAULT_MAX_GAP_PERIODS,
) -> float:
    """Hours in use after a reading at ``ts`` (ILAC-G24 Method 3), without validation.

    The gap since ``last_seen`` counts when ``0 < gap <= max_gap_periods * period_s``; a longer
    gap is downtime, and a reading at or before ``last_seen`` adds nothing. This is the hot-path
    form (one call per reading in the stream processor); :meth:`UsageCounter.observe` checks its
    arguments and then applies it.
    """
    if last_seen is None:
        return hours_in_use
    gap = ts - last_seen
    if 0.0 < gap <= max_gap_periods * period_s:
        return hours_in_use + gap / SECONDS_PER_HOUR
    return hours_in_use


@dataclass(frozen=True, slots=True)
class UsageCounter:
    """Hours in use so far and the latest reading time seen (``None`` before the first)."""

    hours_in_use: float = 0.0
    last_seen: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.hours_in_use) and self.hours_in_use >= 0.0):
            raise UsageError(f"hours in use must be finite and >= 0, got {self.hours_in_use}")

    def observe(
        self, ts: float, period_s: float, max_gap_periods: float = DEFAULT_MAX_GAP_PERIODS
    ) -> UsageCounter:
        """The counter after a reading at ``ts`` (epoch seconds) from a ``period_s`` reporter.

        The gap since the last reading counts as in use when ``0 < gap <= max_gap_periods *
        period_s`` (ILAC-G24 Method 3). A reading at or before the last one seen (duplicate or
        out of order) changes nothing, so the hours never exceed the wall time between the
        first and the latest reading.
        """
        if not (math.isfinite(period_s) and period_s > 0.0):
            raise UsageError(f"reporting period must be finite and > 0 s, got {period_s}")
        if not max_gap_periods >= 1.0:
            raise UsageError(f"max_gap_periods must be >= 1, got {max_gap_periods}")
        if not math.isfinite(ts):
            raise UsageError(f"timestamp not finite: {ts}")
        last = self.last_seen
        if last is not None and not ts > last:
            return self
        return UsageCounter(
            hours_in_use_after(self.hours_in_use, last, ts, period_s, max_gap_periods), ts
        )


def due_by_usage(hours_in_use: float, interval_hours: float) -> bool:
    """Whether recalibration is due by use: ``hours_in_use >= interval_hours`` (ILAC-G24 M3)."""
    if not (math.isfinite(interval_hours) and interval_hours > 0.0):
        raise UsageError(f"interval must be finite and > 0 h, got {interval_hours}")
    if not hours_in_use >= 0.0:
        raise UsageError(f"hours in use must be >= 0, got {hours_in_use}")
    return hours_in_use >= interval_hours
