"""Designing a CUSUM for the shift that matters and the false-alarm rate one can live with.

The reference value is half the shift to detect, ``K = delta / 2`` (Montgomery, Introduction to
SQC, §9.1.3); the decision interval H is then the smallest one whose in-control average run
length reaches the target, found by bisection on Siegmund's approximation (Montgomery §9.1.4,
eq. 9.5; :func:`metrology.detectors.cusum_siegmund_average_run_length`), which is increasing in H.
"""

from __future__ import annotations

import math

from scipy.special import chdtri  # type: ignore[import-untyped, unused-ignore]

from metrology.detectors import ChartError, CusumChart, cusum_siegmund_average_run_length

_H_MAX = 200.0


def design_cusum(shift_sigma: float, in_control_arl: float, head_start: float = 0.0) -> CusumChart:
    """A two-sided CUSUM detecting ``shift_sigma`` (in sigma) with ARL0 >= ``in_control_arl``."""
    if not shift_sigma > 0.0:
        raise ChartError(f"shift to detect must be > 0 sigma, got {shift_sigma}")
    if not in_control_arl > 1.0:
        raise ChartError(f"in-control ARL must be > 1, got {in_control_arl}")
    k = shift_sigma / 2.0
    low, high = 0.0, _H_MAX
    for _ in range(60):
        middle = (low + high) / 2.0
        arl = cusum_siegmund_average_run_length(CusumChart(k, middle), 0.0)
        if arl >= in_control_arl:
            high = middle
        else:
            low = middle
    return CusumChart(reference_k=k, decision_h=high, head_start=head_start)


def sigma_upper_bound_factor(count: int, confidence: float = 0.95) -> float:
    """Factor turning a sample standard deviation of ``count`` values into its upper bound.

    ``sigma <= s * sqrt((n - 1) / chi2_(1-confidence, n-1))`` with the given confidence
    (chi-square interval for a normal variance; e.g. NIST/SEMATECH e-Handbook §7.2.3.1). Charts
    scaled with the bound err towards fewer false alarms when the warm-up window is short.
    """
    if count < 2:
        raise ChartError(f"a standard deviation needs at least 2 values, got {count}")
    if not 0.0 < confidence < 1.0:
        raise ChartError(f"confidence must be in (0, 1), got {confidence}")
    lower_quantile = float(chdtri(count - 1, confidence))  # P(chi2 > q) = confidence
    return math.sqrt((count - 1) / lower_quantile)
