"""Processing policy: the detector, decision and due-date settings `step` applies."""

from __future__ import annotations

from dataclasses import dataclass, field

from metrology.conformity import DecisionRule
from metrology.detectors import EwmaChart
from metrology.intervals import StaircasePolicy


@dataclass(frozen=True, slots=True)
class ProcessingPolicy:
    """How readings are judged. One value per tenant or instrument; stored with decisions.

    Drift detection is designed per instrument for the change that matters to it, as an
    acceptance-control design does when the tolerance is much wider than the scatter
    (Montgomery, Introduction to SQC, §10.2). The in-control mean of the error is its as-left
    value, zero once the certificate's correction is applied; the scatter (sigma) is estimated
    from a warm-up window, never below a fraction of the stated u(e). The shift to detect is
    ``max(min_shift_uncertainties * u(e), drift_fraction * half tolerance)``: a change the
    calibration uncertainty cannot explain and that eats a noticeable part of the tolerance.
    The CUSUM reference value is half that shift and its decision interval is solved for
    ``years_between_false_alarms`` of readings between false alarms (at the instrument's
    reporting rate, an upper bound of its residual rate); the EWMA signals only beyond its
    statistical limit *and* beyond half that shift.
    """

    ewma: EwmaChart = field(default_factory=lambda: EwmaChart(smoothing=0.1, limit_width=3.5))
    drift_fraction: float = 0.25
    """The error change worth flagging, as a fraction of half the tolerance interval..."""
    min_shift_uncertainties: float = 2.0
    """...and never less than this many standard uncertainties u(e) of the residual."""
    years_between_false_alarms: float = 100.0
    """Designed time between false CUSUM alarms on a stable instrument (1 % a year)."""
    page_hinkley: bool = False
    """Also run the Page-Hinkley test (designed like the CUSUM: magnitude tolerance half the
    shift, threshold the CUSUM's decision interval) as a third drift detector."""
    warm_up_residuals: int = 30
    """Residuals after a calibration used to estimate the scatter (sigma) of the residual."""
    sigma_confidence: float = 0.95
    """Sigma is the upper confidence bound of its warm-up estimate (short windows err safe)."""
    sigma_floor_fraction: float = 0.5
    """Sigma is never taken below this fraction of the residual's stated standard uncertainty."""
    decision_rule: DecisionRule = field(default_factory=DecisionRule.simple)
    interval_policy: StaircasePolicy = field(default_factory=StaircasePolicy)
    """ILAC-G24 staircase for instruments whose fleet file sets none."""
    due_soon_days: float = 30.0
    offline_after_periods: float = 5.0
    """OFFLINE once no reading came for this many reporting periods..."""
    offline_grace_s: float = 900.0
    """...plus this delivery allowance: gateways batch readings before they publish."""
    prediction_every: int = 10
    """Recompute the predicted out-of-tolerance date every this many residuals."""
    prediction_confidence: float = 0.95
    prediction_min_points: int = 30
    prediction_min_spread_days: float = 3.0
    """Standard deviation of the fit's times below which no date is predicted (~10 days' span)."""
    prediction_max_extrapolation: float = 1.0
    """Predict no further ahead than this many times the span of the record behind the fit."""
    prediction_significance: float = 0.001
    """Slope significance required before predicting (strict: the test is repeated as data come)."""
    estimate_precision: float = 0.15
    """The two-phase fit's crossing is given as the best estimate of the date only once its
    standard uncertainty is at most this fraction of the time left (for a normal error the
    median |error| is 0.674 u, so a first estimate is then off by about 10 % of the time left
    or less, half the time)..."""
    estimate_max_extrapolation: float = 2.0
    """...and the time left is at most this many times the drift's record since its onset."""
    in_use_window_s: float = 7 * 86400.0
    """The best estimate is judged against the tightest limits of the values measured in use
    over the last one to two of these windows (a relative tolerance)."""
