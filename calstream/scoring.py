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

import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from edge_sim.behaviour import Behaviour
from edge_sim.truth import GroundTruth
from metrology.instrument import ReferenceKind
from metrology.timebase import SECONDS_PER_DAY


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
    """Compare when each instrument was first flagged for drift with what really happened."""
    injected = before = late = missed = stable = false_alarms = 0
    within = within_flagged = unobservable = instant = instant_flagged = 0
    leads: list[float] = []
    for instrument in truth.instruments.values():
        flagged = first_flagged_at.get(instrument.instrument_id)
        observable = instrument.reference_kind != ReferenceKind.NONE.value
        if instrument.behaviour is Behaviour.STABLE:
            if observable:
                stable += 1
                false_alarms += flagged is not None
            continue
        if not instrument.behaviour.drifts:
            continue  # stuck values and dropouts are data-quality faults, scored elsewhere
        if not observable:
            unobservable += 1
            continue
        if instrument.true_oot_at is None:
            within += 1
            within_flagged += flagged is not None
            continue
        if (
            instrument.behaviour is Behaviour.STEP_SHIFT
        ):  # a step that leaves tolerance does so at once
            instant += 1
            instant_flagged += flagged is not None
            continue
        injected += 1
        if flagged is None:
            missed += 1
        elif flagged <= instrument.true_oot_at:
            before += 1
            leads.append((instrument.true_oot_at - flagged) / SECONDS_PER_DAY)
        else:
            late += 1
    return DetectionScore(
        injected_drifts=injected,
        detected_before_oot=before,
        detected_late=late,
        missed=missed,
        stable_instruments=stable,
        false_alarms=false_alarms,
        drifts_within_tolerance=within,
        drifts_within_tolerance_flagged=within_flagged,
        unobservable_drifts=unobservable,
        instant_shifts=instant,
        instant_shifts_flagged=instant_flagged,
        median_lead_days=statistics.median(leads) if leads else None,
    )
