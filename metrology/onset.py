"""When a drift began, how fast it goes and when it leaves tolerance: the two-phase drift fit.

An instrument is usually stable after its calibration and starts to drift at some unknown time
(ageing of a sensing element, fouling, creep). A straight line fitted over the whole period then
mixes the flat record with the drift and underestimates the rate; a line fitted only since a
detector's alarm throws the flat record away. The model here is the continuous two-phase line

    ``e(t) = a + b (t - tau)+``

of the error of indication against time since calibration: the as-left level ``a`` until the
onset ``tau``, then a drift of rate ``b`` (Hudson 1966, "Fitting segmented curves whose join
points have to be estimated", JASA 61:1097; Hinkley 1969, "Inference about the intersection in
two-phase regression", Biometrika 56:495). ``tau`` at the start of the record is a drift since
calibration: the plain line of :class:`metrology.drift.DriftFit`.

**State.** The residuals are summarised in time bins of one width (count and the sums of
``t, t^2, e, t e``, times on the caller's axis, errors relative to the first one); when there are
:data:`MAX_BINS` bins, neighbours merge and the width doubles. The state is bounded whatever the
length of the record, and adding a residual touches only the open bin (:meth:`DriftRecord.add`).

**Fit** (:func:`fit_onset`). The onset is estimated by profile least squares over the bin
boundaries (Hudson's search, to one bin width); ``a`` and ``b`` by least squares given ``tau``;
their covariance with ``tau``'s own share by linearisation of the model in ``(a, b, tau)``
(Muggeo 2003, "Estimating regression models with unknown break-points", Statistics in Medicine
22:3055), whose information matrix comes from the same bin sums.

**Wander.** White-noise least squares understates the uncertainty when the error wanders about
the line (a drift of uneven pace): the residuals are serially correlated, the fitted rate
follows the wander, and the wander goes on after the last point. The error after the onset is
modelled as the line plus a Wiener process ``W`` of diffusion ``q`` (variance ``q`` per unit
time). ``q`` is estimated from the lack of fit of the bin means beyond what the within-bin
scatter explains (a moment estimator; the lack-of-fit / pure-error split of Draper & Smith,
*Applied Regression Analysis*, §2.1). When it is positive, the level and rate come from
generalised least squares on the bin means with ``Cov = diag(s^2 / n_k) + q min(x_k, x_l)``,
the wander now from best linear unbiased prediction (Goldberger 1962, JASA 57:369), and the
uncertainty of the predicted error from the universal-kriging variance, which includes the
wander still to come between now and the crossing.

The crossing ``t* = tau + (L - a - W_now) / b`` has the standard uncertainty
``u(t*) = sqrt(u(e(t*))^2 + u(L)^2) / |b|`` (inverse prediction by the delta method, Draper &
Smith §3.2), ``u(L)`` the caller's uncertainty of the limit that will apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from metrology.drift import DriftFitError

__all__ = ["MAX_BINS", "DriftRecord", "OnsetFit", "fit_onset"]

MAX_BINS = 64
"""Bins kept at most; when reached, neighbours merge (the width doubles)."""
MIN_DRIFT_POINTS = 10
"""Residuals needed after a candidate onset for its drift rate to be fitted."""

_new = tuple.__new__

Matrix3 = tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]
"""A 3x3 matrix as rows."""
Array = npt.NDArray[np.float64]
Bin = tuple[float, ...]
"""``(index, n, sum t, sum t^2, sum e, sum t e)`` of one bin (``index * width`` is its start)."""


class DriftRecord(NamedTuple):
    """The residuals of one calibration period in time bins (immutable; :meth:`add` returns
    the record with one more point). Times must not decrease."""

    width: float = 1.0
    """Bin width on the time axis (the stream processors use days)."""
    origin_error: float | None = None
    """The first error: the others are summed relative to it (no cancellation for an offset)."""
    squares: float = 0.0
    """Sum of the squared relative errors of every point."""
    bins: tuple[Bin, ...] = ()
    """Closed bins, in time order."""
    open_index: int = 0
    """Index of the open bin."""
    n: float = 0.0
    sum_t: float = 0.0
    sum_tt: float = 0.0
    sum_e: float = 0.0
    sum_te: float = 0.0
    last_time: float = 0.0
    """Time of the last point."""

    @property
    def points(self) -> int:
        """Points in the record."""
        return int(sum(b[1] for b in self.bins) + self.n)

    def add(self, t: float, e: float) -> DriftRecord:
        """The record with the point ``(t, e)`` added (``t`` not before the last point)."""
        if type(t) is not float or type(e) is not float:
            t, e = float(t), float(e)
        if self.origin_error is not None and t < self.last_time:
            raise DriftFitError(f"time {t:g} is before the record's last point {self.last_time:g}")
        e0 = e if self.origin_error is None else self.origin_error
        x = e - e0
        index = math.floor(t / self.width)
        if self.n and index != self.open_index:
            record = self._closed()
            if len(record.bins) >= MAX_BINS:
                record = record._merged()
            return record._start(math.floor(t / record.width))._put(t, x, e0)
        if not self.n:
            return self._replace(open_index=index)._put(t, x, e0)
        return self._put(t, x, e0)

    def _put(self, t: float, x: float, e0: float) -> DriftRecord:
        # tuple.__new__ skips the named tuple's keyword handling: this runs for every residual.
        return _new(
            DriftRecord,
            (
                self.width,
                e0,
                self.squares + x * x,
                self.bins,
                self.open_index,
                self.n + 1.0,
                self.sum_t + t,
                self.sum_tt + t * t,
                self.sum_e + x,
                self.sum_te + t * x,
                t,
            ),
        )

    def _open_bin(self) -> Bin:
        return (float(self.open_index), self.n, self.sum_t, self.sum_tt, self.sum_e, self.sum_te)

    def _closed(self) -> DriftRecord:
        return self._replace(
            bins=(*self.bins, self._open_bin()),
            n=0.0,
            sum_t=0.0,
            sum_tt=0.0,
            sum_e=0.0,
            sum_te=0.0,
        )

    def _start(self, index: int) -> DriftRecord:
        """Open bin ``index``: the last closed bin itself when a merge made them one."""
        if self.bins and int(self.bins[-1][0]) == index:
            _, n, sum_t, sum_tt, sum_e, sum_te = self.bins[-1]
            return self._replace(
                bins=self.bins[:-1], open_index=index, n=n, sum_t=sum_t, sum_tt=sum_tt,
                sum_e=sum_e, sum_te=sum_te,
            )  # fmt: skip
        return self._replace(open_index=index)

    def _merged(self) -> DriftRecord:
        """Neighbouring bins summed, at twice the width."""
        merged: list[list[float]] = []
        for b in self.bins:
            index = float(math.floor(b[0] / 2.0))
            if merged and merged[-1][0] == index:
                merged[-1][1:] = [x + y for x, y in zip(merged[-1][1:], b[1:], strict=True)]
            else:
                merged.append([index, *b[1:]])
        return self._replace(width=self.width * 2.0, bins=tuple(tuple(b) for b in merged))

    def all_bins(self) -> tuple[Bin, ...]:
        """Every non-empty bin, the open one included, in time order."""
        return (*self.bins, self._open_bin()) if self.n else self.bins


@dataclass(frozen=True, slots=True)
class OnsetFit:
    """The two-phase line fitted to a :class:`DriftRecord`, and the numbers behind it.

    ``onset`` is ``tau`` (``from_start``: the start of the record's first bin, a drift since
    calibration), ``level`` is ``a`` (the as-left error), ``rate`` is ``b``; ``wander`` is the
    best prediction of the random-walk component now (0 without one), so the error expected at
    a time ``t`` after the last point is ``level + rate (t - onset) + wander``.
    """

    onset: float
    from_start: bool
    level: float
    rate: float
    wander: float
    covariance: Matrix3
    """Of ``(a, b, tau)`` (``tau``'s row and column are zero when ``from_start``)."""
    points: int
    drift_points: int
    """Points after the onset."""
    bins: int
    bin_width: float
    noise_variance: float
    """``s^2`` of single points about the line (within-bin, pure error)."""
    diffusion: float
    """``q``: variance per unit time of a random-walk component (0 when none is seen)."""
    last_time: float
    kriging: tuple[float, float, float, float]
    """``(z_a, z_b, z_tau, kappa)``: ``z = X' S^-1 c`` and ``kappa = c' S^-1 c`` of the
    prediction of the wander (see :meth:`error_uncertainty`)."""

    @property
    def rate_standard_uncertainty(self) -> float:
        return math.sqrt(max(self.covariance[1][1], 0.0))

    @property
    def rate_t(self) -> float:
        """``b / u(b)`` (infinite for a noiseless nonzero rate)."""
        u = self.rate_standard_uncertainty
        if u > 0.0:
            return self.rate / u
        return 0.0 if self.rate == 0.0 else math.copysign(math.inf, self.rate)

    def error_at(self, t: float) -> float:
        """The best prediction of the (noise-free) error at ``t``, not before the last point."""
        return self.level + self.rate * max(t - self.onset, 0.0) + self.wander

    def error_uncertainty(self, t: float) -> float:
        """Standard uncertainty of :meth:`error_at` (universal kriging variance, module doc)."""
        z_a, z_b, z_tau, kappa = self.kriging
        h = (1.0 - z_a, max(t - self.onset, 0.0) - z_b, -self.rate - z_tau)
        c = self.covariance
        line = sum(h[i] * c[i][j] * h[j] for i in range(3) for j in range(3))
        walk = self.diffusion * max(t - self.onset, 0.0) - kappa
        return math.sqrt(max(line, 0.0) + max(walk, 0.0))

    def crossing(self, lower: float | None, upper: float | None) -> float | None:
        """When the predicted error reaches the limit it moves towards (not before the last
        point); ``None`` for a zero rate or without that limit."""
        if self.rate == 0.0:
            return None
        limit = upper if self.rate > 0.0 else lower
        if limit is None:
            return None
        at = self.onset + (limit - self.level - self.wander) / self.rate
        return max(at, self.last_time)

    def crossing_standard_uncertainty(self, t: float, limit_uncertainty: float = 0.0) -> float:
        """``u(t*) = sqrt(u(e(t*))^2 + u(L)^2) / |b|`` of the time ``t`` at which the error
        reaches a level ``L`` known to ``limit_uncertainty`` (inverse prediction by the delta
        method, Draper & Smith §3.2)."""
        return math.hypot(self.error_uncertainty(t), limit_uncertainty) / abs(self.rate)


def _bin_design(
    bins: tuple[Bin, ...], j: int, tau: float, rate: float, from_start: bool
) -> tuple[Array, Array, Array, Array]:
    """Counts, means, times since the onset (0 before it) and the design
    ``[1, x, -b 1(x > 0)]`` of the bin means (the onset's column only when the onset is not the
    record's start)."""
    m = len(bins)
    counts = np.array([b_k[1] for b_k in bins])
    means = np.array([b_k[4] for b_k in bins]) / counts
    drifting = np.arange(m) >= j
    x = np.where(drifting, np.array([b_k[2] for b_k in bins]) / counts - tau, 0.0)
    columns = [np.ones(m), x] + ([] if from_start else [np.where(drifting, -rate, 0.0)])
    return counts, means, x, np.column_stack(columns)


def _diffusion(
    y: Array, counts: Array, x: Array, design: Array, pure: float, within_dof: float
) -> float:
    """``q`` from the lack of fit of the bin means (a moment estimator).

    The bin means ``y`` are fitted by least squares weighted by the counts ``N``; with
    ``R = I - X (X' N X)^-1 X' N`` the residuals are ``R y``, and under ``y = X beta + W + e``
    (``W`` a Wiener process of diffusion ``q`` from the onset, ``Cov W = q K``,
    ``K = min(x_k, x_l)``) the lack-of-fit sum of squares ``SS = y' R' N R y`` has the
    expectation ``s^2 tr(R' N R N^-1) + q tr(R' N R K)``, both sums over the drifting bins
    (the wander starts at the onset); ``q`` is the positive part of the solution, with ``s^2``
    the pure error (within-bin scatter).
    """
    m = design.shape[0]
    if within_dof < 1 or not pure > 0.0:
        return 0.0
    weighted = design.T * counts
    try:
        projection = np.linalg.solve(weighted @ design, weighted)
    except np.linalg.LinAlgError:
        return 0.0
    residual_maker = np.eye(m) - design @ projection
    residuals = residual_maker @ y
    drifting = (x > 0.0).astype(np.float64) * counts
    ss = float(np.sum(drifting * residuals * residuals))
    weighted_residual = residual_maker.T @ (drifting[:, None] * residual_maker)
    noise_share = float(np.sum(weighted_residual * np.diag(1.0 / counts)))  # E[ss] / s^2
    if not noise_share > 0.0 or ss <= noise_share * pure:
        return 0.0
    spread = float(np.sum(weighted_residual * np.minimum.outer(x, x)))
    if not spread > 0.0:
        return 0.0
    return (ss - noise_share * pure) / spread


def _profile_onset(
    record: DriftRecord, bins: tuple[Bin, ...], min_drift_points: int
) -> tuple[int, float, float, float, float] | None:
    """``(j, tau, a, b, sse)`` of the least-squares onset over the bin boundaries.

    For an onset at bin ``j``'s start, the sums of the points from bin ``j`` on (suffix sums)
    give ``x = (t - tau)+`` and the normal equations of ``e = a + b x`` in O(1) each. An onset
    after the start (``j > 0``) has one parameter more than the line from the start (``j = 0``):
    it is preferred only when it lowers the Bayesian information criterion,
    ``n ln(SSE_0 / SSE_j) > ln n`` (Schwarz 1978, Annals of Statistics 6:461).
    """
    m = len(bins)
    n_all = sum(b[1] for b in bins)
    e_all = sum(b[4] for b in bins)
    width = record.width
    start: tuple[int, float, float, float, float] | None = None
    best: tuple[int, float, float, float, float] | None = None
    nj = t1 = t2 = e1 = te = 0.0
    suffix: list[tuple[float, float, float, float, float]] = []
    for b_k in reversed(bins):
        nj, t1, t2, e1, te = nj + b_k[1], t1 + b_k[2], t2 + b_k[3], e1 + b_k[4], te + b_k[5]
        suffix.append((nj, t1, t2, e1, te))
    suffix.reverse()
    for j in range(m - 1):  # an onset with at least two bins after it
        nj, t1, t2, e1, te = suffix[j]
        if nj < min_drift_points:
            break  # later onsets have fewer points still
        tau = bins[j][0] * width
        sx = t1 - nj * tau
        sxx = t2 - 2.0 * tau * t1 + nj * tau * tau
        sxe = te - tau * e1
        det = n_all * sxx - sx * sx
        if not det > 1e-9 * n_all * sxx:
            continue
        b = (n_all * sxe - sx * e_all) / det
        a = (e_all - b * sx) / n_all
        sse = max(record.squares - a * e_all - b * sxe, 0.0)
        if j == 0:
            start = (j, tau, a, b, sse)
        elif best is None or sse < best[4]:
            best = (j, tau, a, b, sse)
    if start is None or best is None:
        return start or best
    if start[4] == 0.0:
        return start
    if best[4] == 0.0 or n_all * math.log(start[4] / best[4]) > math.log(n_all):
        return best
    return start


def _matrix3(rows: list[list[float]]) -> Matrix3:
    (a, b, c), (d, e, f), (g, h, i) = ([float(v) for v in row] for row in rows)
    return (a, b, c), (d, e, f), (g, h, i)


def _inverse3(m: list[list[float]]) -> list[list[float]] | None:
    """The inverse of a symmetric positive-definite 3x3 matrix (``None`` when singular)."""
    (a, b, c), (_, d, e), (_, _, f) = m
    co = (d * f - e * e, c * e - b * f, b * e - c * d, a * f - c * c, b * c - a * e, a * d - b * b)
    det = a * co[0] + b * co[1] + c * co[2]
    if not det > 1e-12 * a * d * f:
        return None
    i00, i01, i02, i11, i12, i22 = (v / det for v in co)
    return [[i00, i01, i02], [i01, i11, i12], [i02, i12, i22]]


def fit_onset(record: DriftRecord, min_drift_points: int = MIN_DRIFT_POINTS) -> OnsetFit | None:
    """The two-phase line of a record (module docstring): the onset by profile least squares;
    without a random-walk component, the level and rate by least squares on the points, with
    a covariance that includes the onset's; with one, by generalised least squares on the bin
    means under the wander's covariance, and the wander now by best linear unbiased prediction.

    ``None`` until some onset has ``min_drift_points`` points after it spread over two bins.
    """
    if min_drift_points < 3:
        raise DriftFitError(f"min_drift_points must be >= 3, got {min_drift_points}")
    bins = record.all_bins()
    m = len(bins)
    if m < 3 or record.origin_error is None:
        return None
    found = _profile_onset(record, bins, min_drift_points)
    if found is None:
        return None
    j, tau, a, b, sse = found
    from_start = j == 0
    parameters = 2 if from_start else 3
    n_all = sum(b_k[1] for b_k in bins)
    if n_all - parameters < 1:
        return None
    width = record.width

    # The bins' residual means about the line: lack of fit and pure error.
    lack_of_fit = drifting_lack_of_fit = 0.0
    nj = sx = sxx = 0.0
    for k, (_, n_k, t1_k, t2_k, e1_k, _) in enumerate(bins):
        fitted = a * n_k
        if k >= j:
            fitted += b * (t1_k - n_k * tau)
            nj += n_k
            sx += t1_k - n_k * tau
            sxx += t2_k - 2.0 * tau * t1_k + n_k * tau * tau
        r = e1_k - fitted
        lack_of_fit += r * r / n_k
        if k >= j:
            drifting_lack_of_fit += r * r / n_k
    within_dof = n_all - m
    pure = max(sse - lack_of_fit, 0.0) / within_dof if within_dof >= 1 else 0.0
    fit = OnsetFit(
        onset=tau,
        from_start=from_start,
        level=a + record.origin_error,
        rate=b,
        wander=0.0,
        covariance=_matrix3([[0.0] * 3] * 3),
        points=int(n_all),
        drift_points=int(nj),
        bins=m,
        bin_width=width,
        noise_variance=pure,
        diffusion=0.0,
        last_time=record.last_time,
        kriging=(0.0, 0.0, 0.0, 0.0),
    )
    # When the drifting bins scatter no more than their means' noise explains (about m - j - 2
    # degrees of freedom), there is no wander to estimate: skip the matrix work.
    if drifting_lack_of_fit > (m - j - 2) * pure:
        counts, y, x, design = _bin_design(bins, j, tau, b, from_start)
        q = _diffusion(y, counts, x, design, pure, within_dof)
        if q > 0.0:
            wandering = replace(fit, diffusion=q)
            return _with_wander(wandering, counts, y, x, design, pure, record.origin_error)
    # Linearised in (a, b, tau): d e / d tau = -b after the onset (Muggeo 2003).
    s2 = max(sse, 0.0) / (n_all - parameters)
    if from_start:
        det = n_all * sxx - sx * sx
        if not det > 0.0:
            return None
        cov = _matrix3(
            [[s2 * sxx / det, -s2 * sx / det, 0.0], [-s2 * sx / det, s2 * n_all / det, 0.0],
             [0.0, 0.0, 0.0]]
        )  # fmt: skip
    else:
        inverse = _inverse3(
            [[n_all, sx, -b * nj], [sx, sxx, -b * sx], [-b * nj, -b * sx, b * b * nj]]
        )
        if inverse is None:  # a zero rate: the onset is not identified
            return None
        cov = _matrix3([[s2 * v for v in row] for row in inverse])
    return replace(fit, covariance=cov)


def _with_wander(
    fit: OnsetFit,
    counts: Array,
    y: Array,
    x: Array,
    design: Array,
    pure: float,
    origin_error: float,
) -> OnsetFit | None:
    """Level, rate and covariance by GLS on the bin means, ``Cov = diag(s^2 / n_k) +
    q min(x_k, x_l)`` over the drifting bins (a Wiener process from the onset, ``x = t - tau``
    at each bin's mean time), and the wander now by best linear unbiased prediction
    (Goldberger 1962, "Best linear unbiased prediction in the generalized linear regression
    model", JASA 57:369): ``c' S^-1 (y - X beta)`` with ``c = Cov(W(t*), y) = q x``."""
    q = fit.diffusion
    cov_y = np.diag(pure / counts) + q * np.minimum.outer(x, x)
    p = design.shape[1]
    # One solve whitens the design, the means and c together.
    stacked = np.column_stack([design, y, q * x])
    try:
        white = np.linalg.solve(np.linalg.cholesky(cov_y), stacked)
        covariance = np.linalg.inv(white[:, :p].T @ white[:, :p])
    except np.linalg.LinAlgError:
        return None
    if not (np.all(np.isfinite(covariance)) and covariance[1, 1] > 0.0):
        return None
    line, white_y, white_c = white[:, :2], white[:, p], white[:, p + 1]
    # The level and rate given the onset; the onset's column only widens the covariance.
    level, rate = np.linalg.lstsq(line, white_y, rcond=None)[0]
    wander = float(white_c @ (white_y - line @ np.array([level, rate])))
    z = np.zeros(3)
    z[:p] = white[:, :p].T @ white_c
    cov3 = np.zeros((3, 3))
    cov3[:p, :p] = covariance
    return replace(
        fit,
        level=float(level) + origin_error,
        rate=float(rate),
        wander=wander,
        covariance=_matrix3(cov3.tolist()),
        kriging=(float(z[0]), float(z[1]), float(z[2]), float(white_c @ white_c)),
    )
