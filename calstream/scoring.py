"""Scoring drift detection against the simulator's ground truth.

A drift is *detected before out of tolerance* when the instrument was first flagged with a drift
condition (DRIFTING, AT_RISK or OUT_OF_TOLERANCE) no later than the time its true error left
tolerance. A step shift that jumps straight out of tolerance cannot be seen coming; such shifts
are counted apart (and whether they were flagged at all). A *false alarm* is a drift condition
on an instrument whose true error never moved.
Only instruments with a reference (check standard, reference instrument, peers) are scored:
without one, drift is unobservable by design (UNVERIFIED); those are counted apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from edge_sim.truth import GroundTruth


@dataclass(frozen=True, slots=True)
class DetectionScore:
    injected_drifts: int
    """Drifts (with a reference) whose true error left tolerance inside the simulated window."""
    detected_before_oot: int
    detected_late: int
    missed: int
    stable_instruments: int
    false_alarms: int
    drifts_within_tolerance: int
    """Drifts (with a reference) that stayed inside tolerance during the window."""
    drifts_within_tolerance_flagged: int
    unobservable_drifts: int
    """Drifting instruments without any reference: UNVERIFIED by design."""
    instant_shifts: int
    """Step shifts that jumped straight out of tolerance: no warning can precede them."""
    instant_shifts_flagged: int
    median_lead_days: float | None
    """Median time from the first flag to the true out-of-tolerance time."""

    @property
    def detection_rate(self) -> float | None:
        return self.detected_before_oot / self.injected_drifts if self.injected_drifts else None

    @property
    def false_alarm_rate(self) -> float | None:
        return self.false_alarms / self.stable_instruments if self.stable_instruments else None

    def as_dict(self) -> dict[str, object]:
        document: dict[str, object] = asdict(self)
        document["detection_rate"] = self.detection_rate
        document["false_alarm_rate"] = self.false_alarm_rate
        return document


def score_detection(
    truth: GroundTruth, first_flagged_at: Mapping[str, float | None]
) -> DetectionScore:
    """Compare when each instrument was first flagged for drift with what really happened.

    The classification (stable, data fault, unobservable, instant shift, within tolerance,
    leaving tolerance) is the detection benchmark's (:mod:`calstream.detection_bench`); this is
    its summary for one run.
    """
    from calstream.detection_bench import outcomes_of, score

    bench = score(outcomes_of(truth, first_flagged_at))
    drifts = bench.kinds["all"]
    return DetectionScore(
        injected_drifts=drifts.leaving_tolerance,
        detected_before_oot=drifts.detected_before_oot,
        detected_late=drifts.detected_late,
        missed=drifts.missed,
        stable_instruments=bench.stable_instruments,
        false_alarms=bench.stable_flagged,
        drifts_within_tolerance=drifts.within_tolerance,
        drifts_within_tolerance_flagged=drifts.within_tolerance_flagged,
        unobservable_drifts=bench.unobservable_drifts,
        instant_shifts=bench.instant_shifts,
        instant_shifts_flagged=bench.instant_shifts_flagged,
        median_lead_days=drifts.lead_days_median,
    )
