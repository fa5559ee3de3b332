"""What goes wrong with an instrument: behaviours and the error they inject into its indication.

The error of indication of a simulated instrument is ``e(t) = d(t) + n(t)``: ``n`` is white noise
(its sigma is set by :mod:`edge_sim.scenario` from the calibration uncertainty) and ``d`` is the
injected error of the instrument's behaviour, in its registered unit:

- ``stable``: ``d = 0``;
- ``linear_drift``: ``d = r (t - t0)`` after an onset ``t0`` (ageing of a sensing element,
  creep of a load cell, fouling of a flowmeter);
- ``random_walk_drift``: a linear trend plus a Wiener process (drift of uneven pace);
- ``step_shift``: ``d = s`` from ``t0`` on (a mechanical shock, an over-range event);
- ``stuck``: the indication freezes (a failed transmitter or a frozen gateway register);
- ``dropout``: silent stretches longer than five reporting periods (link or power losses).

The onset lies at least :data:`WARM_UP_PERIODS` reporting periods after the window start or the
calibration in force, so that a warm-up window sees a stable error. When a calibration inside the
window takes effect after the onset, the instrument is adjusted: a drift restarts from zero (and
resumes after another warm-up) and a step shift is removed.

Drifts are designed against the tolerance: for about 70 % of the drifting instruments the injected
error leaves the tolerance in the second half of the window, at least 20 % of the window after the
onset (time to detect it before it matters); the others stay inside. The exact crossing is then
found on the instrument's reading times (:func:`first_out_of_tolerance`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from metrology.instrument import Tolerance
from metrology.timebase import SECONDS_PER_DAY

FloatArray = npt.NDArray[np.float64]

WARM_UP_PERIODS = 60
"""Reporting periods of stable error after the window start or an adjustment, before any drift."""
CROSSING_SHARE = 0.7
"""Share of the drifting instruments whose true error leaves tolerance inside the window."""
MIN_LEAD_FRACTION = 0.2
"""A crossing comes at least this fraction of the window after the onset."""
MIN_DROPOUT_PERIODS = 6
"""A dropout is longer than five reporting periods (so OFFLINE must trigger)."""


class Behaviour(StrEnum):
    """How an instrument behaves during the simulated window."""

    STABLE = "stable"
    LINEAR_DRIFT = "linear_drift"
    RANDOM_WALK_DRIFT = "random_walk_drift"
    STEP_SHIFT = "step_shift"
    STUCK = "stuck"
    DROPOUT = "dropout"

    @property
    def drifts(self) -> bool:
        """True for the behaviours that inject a metrological error (drift or shift)."""
        return self in (Behaviour.LINEAR_DRIFT, Behaviour.RANDOM_WALK_DRIFT, Behaviour.STEP_SHIFT)


BEHAVIOUR_SHARES: dict[Behaviour, float] = {
    Behaviour.STABLE: 0.55,
    Behaviour.LINEAR_DRIFT: 0.15,
    Behaviour.RANDOM_WALK_DRIFT: 0.08,
    Behaviour.STEP_SHIFT: 0.08,
    Behaviour.STUCK: 0.07,
    Behaviour.DROPOUT: 0.07,
}


def allocate(
    rng: np.random.Generator, count: int, shares: dict[Behaviour, float]
) -> list[Behaviour]:
    """``count`` behaviours in the given shares (largest remainder), in random order."""
    exact = {b: s * count for b, s in shares.items()}
    counts = {b: math.floor(x) for b, x in exact.items()}
    by_remainder = sorted(shares, key=lambda b: exact[b] - counts[b], reverse=True)
    for b in by_remainder[: count - sum(counts.values())]:
        counts[b] += 1
    pool = [b for b in shares for _ in range(counts[b])]
    return [pool[i] for i in rng.permutation(count)]


@dataclass(frozen=True)
class InjectedError:
    """The deterministic error ``d(t)`` a behaviour adds to the indication (registered unit).

    ``d = rate (t - a) + step + w(t) - w(a)`` for ``t >= a`` and 0 before, where the anchor ``a``
    is the onset, or after an adjustment at a calibration ``c > onset`` the time
    ``c + restart_delay_s``. A non-recurring error (a step) stays 0 after the first adjustment.
    """

    onset: float | None = None
    rate_per_s: float = 0.0
    step: float = 0.0
    restarts: FloatArray = field(default_factory=lambda: np.empty(0))
    restart_delay_s: float = 0.0
    recurs: bool = True
    walk_times: FloatArray | None = None
    walk_values: FloatArray | None = None

    def at(self, ts: FloatArray) -> FloatArray:
        """``d`` at each time of ``ts`` (epoch seconds)."""
        if self.onset is None:
            return np.zeros_like(ts)
        adjusted = np.searchsorted(self.restarts, ts, side="right")
        if len(self.restarts):
            last = self.restarts[np.maximum(adjusted - 1, 0)] + self.restart_delay_s
            anchor = np.where(adjusted > 0, last, self.onset)
        else:
            anchor = np.full_like(ts, self.onset)
        elapsed = ts - anchor
        active = elapsed >= 0.0
        if not self.recurs:
            active &= adjusted == 0
        error = self.rate_per_s * elapsed + self.step
        if self.walk_times is not None and self.walk_values is not None:
            error += np.interp(ts, self.walk_times, self.walk_values) - np.interp(
                anchor, self.walk_times, self.walk_values
            )
        return np.where(active, error, 0.0)


NO_ERROR = InjectedError()


def tolerance_limits(tolerance: Tolerance, values: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Vectorised ``Tolerance.limits_at``: lower and upper limits (-inf/+inf when open)."""
    widen = tolerance.relative * np.abs(values)
    lower = -np.inf if tolerance.lower is None else tolerance.lower - widen
    upper = np.inf if tolerance.upper is None else tolerance.upper + widen
    return np.broadcast_to(lower, values.shape), np.broadcast_to(upper, values.shape)


def first_out_of_tolerance(
    ts: FloatArray, error: FloatArray, true_values: FloatArray, tolerance: Tolerance
) -> float | None:
    """The first time of ``ts`` at which ``error`` lies outside the limits at ``true_values``."""
    lower, upper = tolerance_limits(tolerance, true_values)
    outside = np.flatnonzero((error < lower) | (error > upper))
    return float(ts[outside[0]]) if len(outside) else None


LimitFunction = Callable[[FloatArray, int], FloatArray]
"""``limit(ts, sign)``: the distance from zero error to the tolerance limit on side ``sign``."""


@dataclass(frozen=True, slots=True)
class Window:
    """The simulated window and the reading grid of one instrument."""

    start: float
    end: float
    period_s: float

    @property
    def length(self) -> float:
        return self.end - self.start

    def reading_times(self) -> FloatArray:
        """Every reading time in ``[start, end)``: multiples of the period."""
        first = math.ceil(self.start / self.period_s)
        last = math.ceil(self.end / self.period_s)
        return np.arange(first, last, dtype=np.float64) * self.period_s

    def grid(self, after: float, until: float) -> FloatArray:
        """Reading times in ``(after, until]`` (multiples of the period)."""
        first = math.floor(after / self.period_s) + 1
        last = math.floor(until / self.period_s)
        return np.arange(first, last + 1, dtype=np.float64) * self.period_s


@dataclass(frozen=True, slots=True)
class DriftDesign:
    """Where a drift starts and the time it is meant to cross (``None``: stays inside)."""

    onset: float
    target: float | None
    segment_end: float


def _plan_onset(
    rng: np.random.Generator, window: Window, adjustments: Sequence[float], crosses: bool
) -> DriftDesign | None:
    """Onset after a warm-up, in the segment (between adjustments) holding the target crossing."""
    w = window.length
    warm = WARM_UP_PERIODS * window.period_s
    boundaries = [window.start, *sorted(a for a in adjustments if window.start < a < window.end)]
    target = window.start + w * float(rng.uniform(0.6, 0.9))
    i = max(j for j, b in enumerate(boundaries) if b <= target)
    begin = boundaries[i]
    segment_end = boundaries[i + 1] if i + 1 < len(boundaries) else window.end
    earliest = begin + warm * float(rng.uniform(1.0, 1.5))
    lead = (MIN_LEAD_FRACTION + 0.05) * w
    if earliest > target - lead:
        target = earliest + lead
        if target >= min(segment_end, window.end - 0.02 * w):
            crosses = False
    if earliest >= window.end - warm:
        return None
    latest = target - lead if crosses else max(earliest, target - lead)
    onset = float(rng.uniform(earliest, latest)) if latest > earliest else earliest
    return DriftDesign(onset, target if crosses else None, segment_end)


def _walk(rng: np.random.Generator, window: Window, scale: float) -> tuple[FloatArray, FloatArray]:
    """A Wiener process on a daily grid whose spread over the window is ``scale``."""
    days = max(2, math.ceil(window.length / SECONDS_PER_DAY) + 2)
    times = window.start - SECONDS_PER_DAY + SECONDS_PER_DAY * np.arange(days, dtype=np.float64)
    steps = rng.normal(0.0, scale / math.sqrt(days), days)
    return times, np.cumsum(steps)


def design_error(
    rng: np.random.Generator,
    behaviour: Behaviour,
    crosses: bool,
    window: Window,
    adjustments: Sequence[float],
    limit: LimitFunction,
    sides: Sequence[int],
) -> InjectedError:
    """The injected error of a drifting ``behaviour``, designed against the tolerance ``limit``.

    ``adjustments`` are the calibration dates (the instrument is adjusted at each); ``sides``
    the tolerance sides that exist (+1 upper, -1 lower).
    """
    if not behaviour.drifts:
        return NO_ERROR
    design = _plan_onset(rng, window, adjustments, crosses)
    if design is None:
        return NO_ERROR
    sign = int(rng.choice(list(sides)))
    onset = design.onset
    restarts = np.array(sorted(a for a in adjustments if onset < a < window.end), dtype=np.float64)
    delay = WARM_UP_PERIODS * window.period_s

    if behaviour is Behaviour.STEP_SHIFT:
        shift_at = design.target if design.target is not None else onset
        grid = window.grid(shift_at - window.period_s, design.segment_end)
        if len(grid) == 0:
            return NO_ERROR
        distance = limit(grid, sign)
        if design.target is not None:
            size = float(rng.uniform(1.3, 2.0)) * float(distance[0])
        else:
            size = float(rng.uniform(0.3, 0.6)) * float(np.min(distance))
        return InjectedError(onset=shift_at, step=sign * size, restarts=restarts, recurs=False)

    walk_times: FloatArray | None = None
    walk_values: FloatArray | None = None
    until = design.target if design.target is not None else design.segment_end
    grid = window.grid(onset, until)
    if len(grid) == 0:
        return NO_ERROR
    distance = limit(grid, sign)
    if behaviour is Behaviour.RANDOM_WALK_DRIFT:
        walk_times, walk_values = _walk(rng, window, 0.15 * float(np.min(distance)))
        wander = np.interp(grid, walk_times, walk_values) - float(
            np.interp(onset, walk_times, walk_values)
        )
        distance = distance - (sign * wander if design.target is not None else np.abs(wander))
    # |d| = rate * (t - onset) first exceeds the distance at the argmin of distance / elapsed.
    needed = float(np.min(distance / (grid - onset)))
    if design.target is not None:
        rate = max(needed, 0.0) * 1.001
    else:
        rate = max(needed, 0.0) * float(rng.uniform(0.3, 0.7))
    return InjectedError(
        onset=onset,
        rate_per_s=sign * rate,
        restarts=restarts,
        restart_delay_s=delay,
        walk_times=walk_times,
        walk_values=walk_values,
    )


def draw_stuck_at(rng: np.random.Generator, window: Window) -> float:
    """When the indication freezes: a reading time 30-80 % into the window."""
    at = window.start + window.length * float(rng.uniform(0.3, 0.8))
    return math.ceil(at / window.period_s) * window.period_s


def draw_dropouts(rng: np.random.Generator, window: Window) -> tuple[tuple[float, float], ...]:
    """3-6 silent stretches of 6-60 reporting periods, one of them 1-3 days long, merged."""
    p = window.period_s
    warm = WARM_UP_PERIODS * p
    count = int(rng.integers(3, 7))
    lengths = [p * int(rng.integers(MIN_DROPOUT_PERIODS, 61)) for _ in range(count - 1)]
    lengths.append(max(MIN_DROPOUT_PERIODS * p, SECONDS_PER_DAY * float(rng.uniform(1.0, 3.0))))
    windows = []
    for length in lengths:
        latest = window.end - length - p
        if latest <= window.start + warm:
            continue
        begin = math.ceil(float(rng.uniform(window.start + warm, latest)) / p) * p
        windows.append((begin, begin + math.ceil(length / p) * p))
    windows.sort()
    merged: list[tuple[float, float]] = []
    for begin, end in windows:
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return tuple(merged)
