"""Multi-point correction curves from a calibration certificate.

A certificate may state its correction at several calibration points instead of one gain and
offset: a table of ``(indication, correction)`` pairs, where the correction is what to *add* to
the indication (VIM 3 §2.53, "correction"; METROLOGY.md, "Words"). Between calibration points
the correction is interpolated linearly (EURAMET cg-11 v2.0 §5.2 and cg-18 v4.0 Annex A use
linear interpolation of certificate corrections between adjacent points; the certificate's
uncertainty already covers it only inside the calibrated range).

Outside the calibrated range the curve *holds the end correction* rather than extending the end
slope: extending a slope fitted to two points can run away, while holding the nearest stated
correction is bounded by what the certificate says. Such a value is not covered by the
calibration; :meth:`CurveCorrection.evaluate` flags it ``extrapolated`` and
:meth:`CurveCorrection.covers` answers the question without computing anything.

``apply`` runs for every reading, so it is a ``bisect`` on a tuple plus one multiply-add with
slopes precomputed at construction: for a handful of points that is several times faster than
``numpy.interp`` on a scalar (which pays for array conversion on every call).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Protocol

from metrology.errors import CalibrationError

__all__ = ["CorrectionModel", "CurveCorrection", "CurveEvaluation"]


class CorrectionModel(Protocol):
    """What a calibration record needs from its correction: the best estimate of an indication.

    Implemented by :class:`metrology.calibration.Correction` (gain and offset) and by
    :class:`CurveCorrection` (a table of certificate points).
    """

    def apply(self, indication: float) -> float:
        """The best estimate of the measurand for ``indication``."""
        ...


@dataclass(frozen=True, slots=True)
class CurveEvaluation:
    """The correction at one indication and whether it lies outside the calibrated range."""

    indication: float
    correction: float
    corrected: float
    extrapolated: bool


@dataclass(frozen=True, slots=True)
class CurveCorrection:
    """Corrections at calibration points, interpolated linearly between them.

    ``points`` (any sequence of pairs; stored as a tuple of float pairs) are
    ``(indication, correction)`` pairs with strictly increasing, finite indications
    (at least two) and finite corrections; ``corrected = indication + c(indication)``. With
    ``x_j <= x < x_(j+1)``: ``c(x) = c_j + (c_(j+1) - c_j) / (x_(j+1) - x_j) * (x - x_j)``
    (linear interpolation, EURAMET cg-18 Annex A); for ``x < x_0`` it is ``c_0`` and for
    ``x > x_last`` it is ``c_last`` (held, flagged ``extrapolated``).
    """

    points: tuple[tuple[float, float], ...]
    _indications: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _corrections: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _slopes: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        normalised: list[tuple[float, float]] = []
        for number, point in enumerate(self.points):
            if len(point) != 2:
                raise CalibrationError(
                    f"curve point {number}: expected (indication, correction), got {point!r}"
                )
            x, c = float(point[0]), float(point[1])
            if not (math.isfinite(x) and math.isfinite(c)):
                raise CalibrationError(f"curve point {number}: not finite: ({x}, {c})")
            if normalised and not x > normalised[-1][0]:
                raise CalibrationError(
                    f"curve point {number}: indications must strictly increase, "
                    f"got {x} after {normalised[-1][0]}"
                )
            normalised.append((x, c))
        if len(normalised) < 2:
            raise CalibrationError(f"a correction curve needs >= 2 points, got {len(normalised)}")
        xs = tuple(x for x, _ in normalised)
        cs = tuple(c for _, c in normalised)
        slopes = tuple(
            (cs[j + 1] - cs[j]) / (xs[j + 1] - xs[j]) for j in range(len(normalised) - 1)
        )
        if not all(math.isfinite(s) for s in slopes):
            # Indications a few ulps apart with different corrections: not a usable table.
            raise CalibrationError("curve points too close together: slope not finite")
        object.__setattr__(self, "points", tuple(normalised))
        object.__setattr__(self, "_indications", xs)
        object.__setattr__(self, "_corrections", cs)
        object.__setattr__(self, "_slopes", slopes)

    @property
    def calibrated_range(self) -> tuple[float, float]:
        """The lowest and highest calibration points' indications."""
        return self._indications[0], self._indications[-1]

    def covers(self, indication: float) -> bool:
        """Whether ``indication`` lies within the calibrated range (end points included)."""
        return self._indications[0] <= indication <= self._indications[-1]

    def correction_at(self, indication: float) -> float:
        """``c(indication)``: interpolated inside the range, the end correction held outside."""
        xs = self._indications
        i = bisect_right(xs, indication)
        if i == 0:
            return self._corrections[0]
        if i == len(xs):
            return self._corrections[-1]
        j = i - 1
        return self._corrections[j] + self._slopes[j] * (indication - xs[j])

    def apply(self, indication: float) -> float:
        """The best estimate of the measurand: ``indication + c(indication)``."""
        # Inlined correction_at: this runs for every reading.
        xs = self._indications
        i = bisect_right(xs, indication)
        if i == 0:
            return indication + self._corrections[0]
        if i == len(xs):
            return indication + self._corrections[-1]
        j = i - 1
        return indication + (self._corrections[j] + self._slopes[j] * (indication - xs[j]))

    def evaluate(self, indication: float) -> CurveEvaluation:
        """The correction at ``indication`` with the ``extrapolated`` flag."""
        correction = self.correction_at(indication)
        return CurveEvaluation(
            indication, correction, indication + correction, not self.covers(indication)
        )
