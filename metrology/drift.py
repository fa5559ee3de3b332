"""Drift rate of an instrument and the predicted time it leaves tolerance.

The error of indication is fitted against time since the last calibration, ``e(t) = b0 + b1 t``
(METROLOGY.md, "Drift rate and the predicted out-of-tolerance date"); the fit is incremental, so
the state stays O(1) per instrument. The instrument is predicted out of tolerance at the first
time the prediction band ``e_hat(t) +/- k sqrt(u0^2 + u_pred(t)^2)`` reaches a tolerance limit
(Castrup, "Calibration Intervals from Variables Data", NCSL International Workshop 2005;
implemented in Sandia's suncal, ``suncal/intervals/variables.py``, reliability-target method).

Times are in whatever unit the caller chooses (the stream processors use days since the
calibration); every time returned is in that same unit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from scipy.special import stdtrit  # type: ignore[import-untyped, unused-ignore]

from metrology.errors import DriftFitError

__all__ = [
    "DriftFit",
    "DriftFitError",
    "OutOfTolerancePrediction",
    "predict_out_of_tolerance",
    "predicted_out_of_tolerance",
    "student_t_factor",
]

_SPREAD_RTOL = 1e-12
"""Times closer together than this (relative to their magnitude) count as having no spread."""


def student_t_factor(confidence: float, dof: int, *, two_sided: bool) -> float:
    """Student-t coverage factor for ``confidence`` with ``dof`` degrees of freedom.

    Two-sided: ``t_((1 + p)/2, dof)``; one-sided: ``t_(p, dof)`` (JCGM 100:2008, Annex G.3;
    suncal's ``t_factor`` and ``t_onetail``).
    """
    if not 0.0 < confidence < 1.0:
        raise DriftFitError(f"confidence must be in (0, 1), got {confidence}")
    if dof < 1:
        raise DriftFitError(f"degrees of freedom must be >= 1, got {dof}")
    p = (1.0 + confidence) / 2.0 if two_sided else confidence
    return float(stdtrit(dof, p))


class DriftFit(NamedTuple):
    """Incremental least-squares line of the error ``e`` against time ``t``.

    The state is the count, the means and the centred second moments (co-moments) of ``t`` and
    ``e``, updated by Welford's method extended to a co-moment (Welford 1962, Technometrics 4:419;
    Pébay 2008, Sandia report SAND2008-6212, eq. 3.12): numerically stable where raw running sums
    of ``t^2`` and ``t e`` would cancel catastrophically. From them, with ``Sxx = m2_t``:
    ``b1 = c_te / Sxx``, ``b0 = mean_e - b1 mean_t``, ``SSE = m2_e - c_te^2 / Sxx``,
    ``s^2 = SSE / (n - 2)``, ``Var(b1) = s^2 / Sxx``, ``Var(b0) = s^2 (1/n + mean_t^2 / Sxx)``,
    ``Cov(b0, b1) = -mean_t s^2 / Sxx`` (any regression text, e.g. Draper & Smith, Applied
    Regression Analysis, ch. 1; Castrup 2005 eqs. 5-10). ``SSE`` from the co-moments carries an
    absolute error of about ``eps * m2_e``: for a nearly perfect line (R^2 -> 1) ``s`` is then
    only good to a few digits, which is immaterial next to any calibration uncertainty.
    """

    n: int = 0
    mean_t: float = 0.0
    mean_e: float = 0.0
    m2_t: float = 0.0
    m2_e: float = 0.0
    c_te: float = 0.0

    def add(self, t: float, e: float) -> DriftFit:
        """The fit with the point ``(t, e)`` added."""
        t, e = float(t), float(e)  # keep the state plain floats even when fed numpy scalars
        count = self.n + 1
        dt = t - self.mean_t
        de = e - self.mean_e
        mean_t = self.mean_t + dt / count
        mean_e = self.mean_e + de / count
        return DriftFit(
            count,
            mean_t,
            mean_e,
            self.m2_t + dt * (t - mean_t),
            self.m2_e + de * (e - mean_e),
            self.c_te + dt * (e - mean_e),
        )

    @property
    def dof(self) -> int:
        """Residual degrees of freedom, ``n - 2`` (never below 0)."""
        return max(self.n - 2, 0)

    @property
    def has_time_spread(self) -> bool:
        """Whether the times differ enough to fit a slope."""
        if self.n < 2 or not self.m2_t > 0.0:
            return False
        spread = math.sqrt(self.m2_t / self.n)
        return spread > _SPREAD_RTOL * abs(self.mean_t)

    def _fitted(self) -> bool:
        return self.n >= 3 and self.has_time_spread

    @property
    def slope(self) -> float | None:
        """``b1``, the drift rate (error unit per time unit); ``None`` if n < 3 or no spread."""
        return self.c_te / self.m2_t if self._fitted() else None

    @property
    def intercept(self) -> float | None:
        """``b0``, the fitted error at ``t = 0`` (the as-left error if t starts at calibration)."""
        if not self._fitted():
            return None
        return self.mean_e - (self.c_te / self.m2_t) * self.mean_t

    @property
    def residual_sum_of_squares(self) -> float | None:
        """``SSE = m2_e - c_te^2 / Sxx`` (clipped at 0 against rounding)."""
        if not self._fitted():
            return None
        return max(self.m2_e - self.c_te * self.c_te / self.m2_t, 0.0)

    @property
    def residual_sd(self) -> float | None:
        """``s = sqrt(SSE / (n - 2))``, the scatter about the line."""
        sse = self.residual_sum_of_squares
        return None if sse is None else math.sqrt(sse / (self.n - 2))

    @property
    def slope_standard_error(self) -> float | None:
        """``u(b1) = s / sqrt(Sxx)``."""
        s = self.residual_sd
        return None if s is None else s / math.sqrt(self.m2_t)

    @property
    def slope_t(self) -> float | None:
        """``b1 / u(b1)``, the t statistic of the slope (infinite for a noiseless nonzero slope)."""
        slope, se = self.slope, self.slope_standard_error
        if slope is None or se is None:
            return None
        if se > 0.0:
            return slope / se
        return 0.0 if slope == 0.0 else math.copysign(math.inf, slope)

    def covariance(self) -> tuple[tuple[float, float], tuple[float, float]] | None:
        """``Cov(b0, b1)`` as ``((Var b0, Cov), (Cov, Var b1))``; ``None`` until fitted."""
        s = self.residual_sd
        if s is None:
            return None
        s2 = s * s
        var_b1 = s2 / self.m2_t
        cov = -self.mean_t * var_b1
        var_b0 = s2 / self.n + self.mean_t * self.mean_t * var_b1
        return ((var_b0, cov), (cov, var_b1))

    def predict(self, t: float) -> tuple[float, float] | None:
        """``(e_hat(t), u_pred(t))`` with ``u_pred^2 = s^2 + t'^T Cov(b) t'``, ``t' = (1, t)``.

        Castrup 2005 eq. 19 as corrected in suncal's ``u_pred``; evaluated in the centred form
        ``s^2 (1 + 1/n + (t - mean_t)^2 / Sxx)``, which is algebraically identical and free of
        cancellation far from the origin.
        """
        s = self.residual_sd
        if s is None:
            return None
        slope = self.c_te / self.m2_t
        offset = t - self.mean_t
        e_hat = self.mean_e + slope * offset
        u2 = s * s * (1.0 + 1.0 / self.n + offset * offset / self.m2_t)
        return e_hat, math.sqrt(u2)


@dataclass(frozen=True, slots=True)
class OutOfTolerancePrediction:
    """When the prediction band first reaches a tolerance limit, and the numbers behind it.

    ``time`` is in the fit's time unit (``None``: no prediction, ``reason`` says why).
    ``reason`` is ``"predicted"``, or a short explanation such as ``"too few points (n=2 < 5)"``,
    ``"slope not significant (|t|=0.8 < 2.0)"``, ``"band already outside tolerance at t=..."``
    (then ``time`` is ``after``), ``"band never reaches a limit"``, ``"not within horizon ..."``.
    ``limit`` names the limit reached (``"upper"`` or ``"lower"``).
    """

    time: float | None
    reason: str
    slope: float | None
    slope_t: float | None
    coverage_factor: float | None
    dof: int | None
    limit: str | None = None


def _exit_time(
    fit: DriftFit, limit: float, side: float, k: float, u0: float, after: float
) -> float | None:
    """First ``t > after`` where one edge of the band reaches ``limit``.

    ``side`` is +1 for an upper limit (the band's upper edge ``e_hat + k w``) and -1 for a lower
    one. With ``tau = t - mean_t``, ``d = limit - mean_e``, ``A = u0^2 + s^2 (1 + 1/n)``,
    ``B = s^2 / Sxx``, the edge meets the limit where ``(d - b1 tau)^2 = k^2 (A + B tau^2)`` with
    ``side * (d - b1 tau) >= 0``: a quadratic, solved in closed form. The margin
    ``side * (d - b1 tau) - k w(tau)`` is concave, so it has at most one root after a point
    where it is positive: the exit.
    """
    s = fit.residual_sd
    assert s is not None  # the caller checked the fit
    b1 = fit.c_te / fit.m2_t
    n = fit.n
    d = limit - fit.mean_e
    a_term = u0 * u0 + s * s * (1.0 + 1.0 / n)
    b_term = s * s / fit.m2_t
    k2 = k * k
    qa = b1 * b1 - k2 * b_term
    qb = -2.0 * d * b1
    qc = d * d - k2 * a_term

    roots: list[float] = []
    scale_a = max(abs(b1 * b1), k2 * b_term)
    if scale_a == 0.0 or abs(qa) <= 1e-12 * scale_a:
        if qb != 0.0:
            roots.append(-qc / qb)
    else:
        disc = qb * qb - 4.0 * qa * qc
        if disc < 0.0:
            # A double root (noiseless data, u0 = 0) can come out slightly negative.
            if disc < -1e-9 * (qb * qb + abs(4.0 * qa * qc)):
                return None
            disc = 0.0
        root = math.sqrt(disc)
        q = -0.5 * (qb + math.copysign(root, qb))
        if q != 0.0:
            roots.extend((q / qa, qc / q))
        else:
            roots.append(0.0)  # qb = 0 and disc = 0: a double root at tau = 0

    tolerance = 1e-9 * (abs(d) + k * math.sqrt(a_term) + 1e-300)
    candidates = [
        tau + fit.mean_t
        for tau in roots
        if math.isfinite(tau) and tau + fit.mean_t > after and side * (d - b1 * tau) >= -tolerance
    ]
    return min(candidates) if candidates else None


def _band_edges(fit: DriftFit, t: float, k: float, u0: float) -> tuple[float, float]:
    prediction = fit.predict(t)
    assert prediction is not None
    e_hat, u_pred = prediction
    half = k * math.sqrt(u0 * u0 + u_pred * u_pred)
    return e_hat - half, e_hat + half


def predicted_out_of_tolerance(
    fit: DriftFit,
    lower: float | None,
    upper: float | None,
    calibration_uncertainty: float,
    confidence: float = 0.95,
    *,
    after: float = 0.0,
    horizon: float | None = None,
    min_points: int = 5,
    significance: float = 0.05,
) -> OutOfTolerancePrediction:
    """The first ``t >= after`` where ``e_hat(t) +/- k sqrt(u0^2 + u_pred(t)^2)`` reaches a limit.

    Castrup, "Calibration Intervals from Variables Data" (reliability-target method), as in
    suncal's ``VariablesInterval.calc_reliability_target``: ``k`` is the Student-t factor with
    ``n - 2`` degrees of freedom, two-sided (``t_((1+p)/2)``) when both limits are given and
    one-sided (``t_p``) for a one-sided tolerance, so that at the predicted time the probability
    of being beyond the limit reached is at most ``(1 - p)/2`` resp. ``1 - p``.
    ``calibration_uncertainty`` is the standard uncertainty ``u0`` of the errors (time-of-test
    uncertainty).

    No prediction (``time is None``) with fewer than ``max(min_points, 3)`` points, without spread
    in time, or when the slope is not significant: ``|b1 / u(b1)| <= t_(1 - significance/2, n-2)``
    (two-sided t-test of ``b1 = 0``). When the band is already outside at ``after`` the time is
    ``after``. ``horizon`` is an absolute time on the same axis (for example the due date in
    days since the calibration): later crossings are reported as not within the horizon.
    """
    if not 0.0 < confidence < 1.0:
        raise DriftFitError(f"confidence must be in (0, 1), got {confidence}")
    if not 0.0 < significance < 1.0:
        raise DriftFitError(f"significance must be in (0, 1), got {significance}")
    if not (calibration_uncertainty >= 0.0 and math.isfinite(calibration_uncertainty)):
        raise DriftFitError(
            f"calibration uncertainty must be finite and >= 0, got {calibration_uncertainty}"
        )
    if lower is not None and upper is not None and not lower < upper:
        raise DriftFitError(f"lower limit {lower} must be below upper limit {upper}")

    def nothing(reason: str) -> OutOfTolerancePrediction:
        return OutOfTolerancePrediction(None, reason, None, None, None, None)

    if lower is None and upper is None:
        return nothing("no tolerance limits")
    needed = max(min_points, 3)
    if fit.n < needed:
        return nothing(f"too few points (n={fit.n} < {needed})")
    if not fit.has_time_spread:
        return nothing(f"no spread in time (all {fit.n} points at t={fit.mean_t:g})")

    slope, slope_t = fit.slope, fit.slope_t
    assert slope is not None and slope_t is not None
    dof = fit.dof
    k = student_t_factor(confidence, dof, two_sided=lower is not None and upper is not None)

    def result(
        time: float | None, reason: str, limit: str | None = None
    ) -> OutOfTolerancePrediction:
        return OutOfTolerancePrediction(time, reason, slope, slope_t, k, dof, limit)

    critical = float(stdtrit(dof, 1.0 - significance / 2.0))
    if not abs(slope_t) > critical:
        return result(None, f"slope not significant (|t|={abs(slope_t):.3g} < {critical:.3g})")

    u0 = calibration_uncertainty
    low_edge, high_edge = _band_edges(fit, after, k, u0)
    if upper is not None and high_edge >= upper:
        return result(after, f"band already outside tolerance at t={after:g}", "upper")
    if lower is not None and low_edge <= lower:
        return result(after, f"band already outside tolerance at t={after:g}", "lower")

    crossings: list[tuple[float, str]] = []
    if upper is not None:
        time = _exit_time(fit, upper, 1.0, k, u0, after)
        if time is not None:
            crossings.append((time, "upper"))
    if lower is not None:
        time = _exit_time(fit, lower, -1.0, k, u0, after)
        if time is not None:
            crossings.append((time, "lower"))
    if not crossings:
        return result(None, "band never reaches a limit")
    time, limit = min(crossings)
    if horizon is not None and time > horizon:
        return result(None, f"not within horizon (t={time:.6g} > {horizon:g})", limit)
    return result(time, "predicted", limit)


def predict_out_of_tolerance(
    times: Sequence[float],
    errors: Sequence[float],
    lower: float | None,
    upper: float | None,
    calibration_uncertainty: float,
    confidence: float = 0.95,
) -> float | None:
    """Predicted time of leaving tolerance from a batch of ``(time, error)`` points, or ``None``.

    ``times`` and ``errors`` are in consistent units since the calibration; the result is in the
    unit of ``times``. The fit is a :class:`DriftFit` and the rule that of
    :func:`predicted_out_of_tolerance` with its defaults (at least 5 points, slope significant
    at 5 %, band from ``t = 0``): ``None`` when no prediction is supported; ``0.0`` when the
    band is outside tolerance from the start.
    """
    if len(times) != len(errors):
        raise DriftFitError(f"{len(times)} times but {len(errors)} errors")
    fit = DriftFit()
    for t, e in zip(times, errors, strict=True):
        fit = fit.add(float(t), float(e))
    return predicted_out_of_tolerance(fit, lower, upper, calibration_uncertainty, confidence).time
