"""Per-instrument processing state: O(1), immutable, serialisable.

`step` returns a new state for every reading; nothing is mutated in place, so the same state can
live in a dict (embedded runner) or a Faust table (re-assigned on every change). The containers
are named tuples: one is built per reading, and a tuple is built about three times faster than
a frozen dataclass while being just as immutable (``_asdict()`` serialises it).
"""

from __future__ import annotations

from typing import NamedTuple

from metrology.detectors import (
    Baseline,
    CusumChart,
    CusumState,
    EwmaState,
    PageHinkleyChart,
    PageHinkleyState,
    WarmUp,
)
from metrology.drift import DriftFit
from metrology.health import Status
from metrology.in_use import InUseLimits
from metrology.onset import DriftRecord


class DriftTracking(NamedTuple):
    """Detector and fit state for the calibration period in force (reset by a new calibration)."""

    certificate_id: str | None = None
    origin: float | None = None
    """Start of the period: the calibration date, or the first reading when none is in force."""
    warm_up: WarmUp = WarmUp()
    baseline: Baseline | None = None
    cusum_chart: CusumChart | None = None
    """Designed when the warm-up ends, for the shift that matters to this instrument."""
    shift_to_detect: float | None = None
    """Smallest error change worth flagging, in the measurand's unit."""
    ewma: EwmaState = EwmaState()
    cusum: CusumState = CusumState()
    fit: DriftFit = DriftFit()
    drift_since: float | None = None
    """When a detector first signalled in this period (latched until the next calibration)."""
    drift_detector: str | None = None
    out_of_tolerance_since: float | None = None
    """When a residual was first not accepted under the decision rule (latched likewise)."""
    predicted_oot_at: float | None = None
    """When the prediction band first reaches a limit (Castrup): the date AT_RISK is judged on."""
    prediction_note: str | None = None
    estimated_oot_at: float | None = None
    """Best estimate of leaving tolerance: where the two-phase fit's predicted error reaches
    the limit (:mod:`metrology.onset`), given once precise enough."""
    rise_fit: DriftFit = DriftFit()
    """Fit of the residuals since the upper CUSUM was last zero: the change point of a rise."""
    fall_fit: DriftFit = DriftFit()
    """Likewise for the lower CUSUM."""
    drift_side: int = 0
    """+1 for an upward drift signal, -1 downward, 0 none."""
    in_use: InUseLimits = InUseLimits()
    """The tightest tolerance limits of the values measured in use this period, overall and
    recently (a tolerance relative to the reading is tightest where the process runs lowest):
    what the dates are predicted against. Empty for a tolerance without a relative part (the
    limits are fixed) and for check-standard measurements (verification, not use)."""
    record: DriftRecord = DriftRecord()
    """The residuals of the period in time bins: the two-phase fit behind the best estimate."""
    estimate_note: str | None = None
    """Why the best estimate is what it is (or why there is none)."""
    estimate_u_days: float | None = None
    """Standard uncertainty of the best estimate, in days."""
    drift_onset_at: float | None = None
    """When the two-phase fit says the drift began (epoch seconds; ``None`` before a fit)."""
    page_hinkley_chart: PageHinkleyChart | None = None
    """Designed with the CUSUM when the policy runs Page-Hinkley (else ``None``)."""
    page_hinkley: PageHinkleyState = PageHinkleyState()


class Judgement(NamedTuple):
    """The last residual and what it is judged against (the decision is derived on demand)."""

    residual: float | None = None
    u_residual: float | None = None
    reference: float | None = None
    lower: float | None = None
    upper: float | None = None


class InstrumentState(NamedTuple):
    """Everything `step` remembers about one instrument between readings."""

    tracking: DriftTracking = DriftTracking()
    judgement: Judgement = Judgement()
    readings: int = 0
    last_reading_at: float | None = None
    status: Status | None = None
    conditions: tuple[Status, ...] = ()
    status_since: float | None = None
    first_drift_at: float | None = None
    """First time a drift condition (DRIFTING, AT_RISK, OUT_OF_TOLERANCE) was raised, ever."""
    hours_in_use: float = 0.0
    """Hours in use counted from the telemetry (ILAC-G24 Method 3, :mod:`metrology.usage`)."""
