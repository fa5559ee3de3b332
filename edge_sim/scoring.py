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

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from edge_sim.behaviour import Behaviour
from edge_sim.truth import GroundTruth
from metrology.instrument import ReferenceKind
from metrology.timebase import SECONDS_PER_DAY

DAYS_PER_YEAR = 365.25
KINDS: tuple[Behaviour, ...] = (
    Behaviour.LINEAR_DRIFT,
    Behaviour.RANDOM_WALK_DRIFT,
    Behaviour.STEP_SHIFT,
)
"""The drift kinds scored apart."""
ALL = "all"
"""The key of the figures over every drift kind."""


@dataclass(frozen=True, slots=True)
class FirstFlag:
    """When an instrument was first flagged for drift, and by what."""

    at: float
    cause: str
    """The most severe drift condition then held: OUT_OF_TOLERANCE, AT_RISK, or
    DRIFTING/<detector> (CUSUM or EWMA)."""
    certified: bool = True
    """Whether a calibration certificate was in force then (else u_cal = 0 and the instrument
    was judged on uncorrected readings)."""


@dataclass(frozen=True, slots=True)
class FirstPrediction:
    """The first best estimate of an instrument's out-of-tolerance date, and when it was made."""

    made_at: float
    predicted_oot_at: float


@dataclass(frozen=True, slots=True)
class InstrumentOutcome:
    """One instrument of one seed: what really happened beside what the processor said."""

    seed: int
    instrument_id: str
    behaviour: Behaviour
    reference_kind: str
    window_days: float
    onset_at: float | None
    true_oot_at: float | None
    flagged_at: float | None
    flag_cause: str | None
    flag_certified: bool | None
    """Whether a certificate was in force at the first flag."""
    predicted_at: float | None
    """When the first predicted OOT date was made."""
    predicted_oot_at: float | None
    certified_at_oot: bool = True
    """Whether a calibration certificate was in force at the true out-of-tolerance time."""

    @property
    def observable(self) -> bool:
        return self.reference_kind != ReferenceKind.NONE.value

    @property
    def instant_shift(self) -> bool:
        """A step shift that jumps straight out of tolerance: no warning can precede it."""
        return self.behaviour is Behaviour.STEP_SHIFT and self.true_oot_at is not None


def outcomes_of(
    truth: GroundTruth,
    first_flags: Mapping[str, FirstFlag | float | None],
    first_predictions: Mapping[str, FirstPrediction] | None = None,
    seed: int | None = None,
    uncertified_at_oot: frozenset[str] = frozenset(),
) -> list[InstrumentOutcome]:
    """Join the truth with the first flag (time or :class:`FirstFlag`) and first prediction."""
    predictions = first_predictions or {}
    window_days = (truth.end - truth.start) / SECONDS_PER_DAY
    outcomes = []
    for instrument in truth.instruments.values():
        flag = first_flags.get(instrument.instrument_id)
        flagged_at: float | None
        cause: str | None
        certified: bool | None
        if isinstance(flag, FirstFlag):
            flagged_at, cause, certified = flag.at, flag.cause, flag.certified
        else:
            flagged_at, cause, certified = flag, None if flag is None else "?", None
        prediction = predictions.get(instrument.instrument_id)
        outcomes.append(
            InstrumentOutcome(
                seed=truth.seed if seed is None else seed,
                instrument_id=instrument.instrument_id,
                behaviour=instrument.behaviour,
                reference_kind=instrument.reference_kind,
                window_days=window_days,
                onset_at=instrument.onset_at,
                true_oot_at=instrument.true_oot_at,
                flagged_at=flagged_at,
                flag_cause=cause,
                flag_certified=certified,
                predicted_at=None if prediction is None else prediction.made_at,
                predicted_oot_at=None if prediction is None else prediction.predicted_oot_at,
                certified_at_oot=instrument.instrument_id not in uncertified_at_oot,
            )
        )
    return outcomes


def quantile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile with linear interpolation between order statistics (numpy's default)."""
    return float(np.quantile(values, q)) if len(values) else None


@dataclass(frozen=True, slots=True)
class KindScore:
    """Detection and prediction figures for one drift kind (or all of them)."""

    kind: str
    drifts: int
    """Drifts of this kind with a reference (instant step shifts excluded)."""
    leaving_tolerance: int
    """Of those, drifts whose true error leaves tolerance in the window: the scored ones."""
    detected_before_oot: int
    warned_before_oot: int
    """Of those, first flagged by a warning (DRIFTING or AT_RISK), not by an out-of-tolerance
    residual: a noisy residual beyond the limit just before the true crossing is no warning."""
    detected_late: int
    missed: int
    within_tolerance: int
    within_tolerance_flagged: int
    flagged_before_onset: int
    """Flagged before the drift even began: really a false alarm (counted as detected)."""
    delay_days_median: float | None
    """Drift onset to first flag, over every flagged drift flagged after its onset."""
    delay_days_p90: float | None
    lead_days_median: float | None
    """First flag to true OOT, over the drifts detected before OOT."""
    lead_days_p90: float | None
    predicted_before_oot: int
    """Scored drifts whose first predicted OOT date was made before the true OOT."""
    predicted_after_oot: int
    never_predicted: int
    never_predicted_uncertified: int
    """Of those, drifts with no certificate in force when they left tolerance."""
    date_error_median: float | None
    """|predicted - true OOT| / (true OOT - time of the first prediction)."""
    date_error_p90: float | None
    date_bias_median: float | None
    """Signed (predicted - true OOT) / time left: negative means predicted too early."""
    first_flag_causes: dict[str, int] = field(default_factory=dict)
    """What raised the first flag of the scored drifts."""

    @property
    def detection_rate(self) -> float | None:
        if not self.leaving_tolerance:
            return None
        return self.detected_before_oot / self.leaving_tolerance

    @property
    def within_tolerance_flagged_rate(self) -> float | None:
        if not self.within_tolerance:
            return None
        return self.within_tolerance_flagged / self.within_tolerance

    def as_dict(self) -> dict[str, object]:
        document = asdict(self)
        document["detection_rate"] = self.detection_rate
        document["within_tolerance_flagged_rate"] = self.within_tolerance_flagged_rate
        return document


def _kind_score(kind: str, drifts: list[InstrumentOutcome]) -> KindScore:
    before = warned = late = missed = within = within_flagged = before_onset = 0
    delays: list[float] = []
    leads: list[float] = []
    errors: list[float] = []
    biases: list[float] = []
    predicted_after = never_predicted = never_uncertified = 0
    causes: Counter[str] = Counter()
    scored = 0
    for o in drifts:
        flagged = o.flagged_at
        if flagged is not None and o.onset_at is not None:
            if flagged < o.onset_at:
                before_onset += 1
            else:
                delays.append((flagged - o.onset_at) / SECONDS_PER_DAY)
        if o.true_oot_at is None:
            within += 1
            within_flagged += flagged is not None
            continue
        scored += 1
        if flagged is None:
            missed += 1
        elif flagged <= o.true_oot_at:
            before += 1
            warned += o.flag_cause != "OUT_OF_TOLERANCE"
            leads.append((o.true_oot_at - flagged) / SECONDS_PER_DAY)
        else:
            late += 1
        if o.flag_cause is not None:
            causes[o.flag_cause] += 1
        if o.predicted_at is None or o.predicted_oot_at is None:
            never_predicted += 1
            never_uncertified += not o.certified_at_oot
        elif o.predicted_at < o.true_oot_at:
            left = o.true_oot_at - o.predicted_at
            signed = (o.predicted_oot_at - o.true_oot_at) / left
            errors.append(abs(signed))
            biases.append(signed)
        else:
            predicted_after += 1
    return KindScore(
        kind=kind,
        drifts=len(drifts),
        leaving_tolerance=scored,
        detected_before_oot=before,
        warned_before_oot=warned,
        detected_late=late,
        missed=missed,
        within_tolerance=within,
        within_tolerance_flagged=within_flagged,
        flagged_before_onset=before_onset,
        delay_days_median=quantile(delays, 0.5),
        delay_days_p90=quantile(delays, 0.9),
        lead_days_median=quantile(leads, 0.5),
        lead_days_p90=quantile(leads, 0.9),
        predicted_before_oot=len(errors),
        predicted_after_oot=predicted_after,
        never_predicted=never_predicted,
        never_predicted_uncertified=never_uncertified,
        date_error_median=quantile(errors, 0.5),
        date_error_p90=quantile(errors, 0.9),
        date_bias_median=quantile(biases, 0.5),
        first_flag_causes=dict(causes.most_common()),
    )


@dataclass(frozen=True, slots=True)
class BenchScore:
    """Every figure of the benchmark, over all seeds."""

    kinds: dict[str, KindScore]
    """Per drift kind (``linear_drift``, ``random_walk_drift``, ``step_shift`` within
    tolerance) and ``all``."""
    instant_shifts: int
    instant_shifts_flagged: int
    unobservable_drifts: int
    """Drifting instruments without any reference (UNVERIFIED by design, not scored)."""
    stable_instruments: int
    stable_flagged: int
    stable_instrument_years: float
    stable_predicted: int
    """Stable instruments that got a predicted OOT date at some point."""
    false_alarm_causes: dict[str, int]
    """What first flagged the stable instruments that were flagged."""
    false_alarms_by_reference: dict[str, list[int]]
    """Per reference kind: [stable instruments flagged, stable instruments]."""
    false_alarms_without_certificate: int
    """Stable instruments first flagged while no calibration certificate was in force."""

    @property
    def false_alarms_per_instrument_year(self) -> float | None:
        if not self.stable_instrument_years:
            return None
        return self.stable_flagged / self.stable_instrument_years

    @property
    def stable_flagged_fraction(self) -> float | None:
        return self.stable_flagged / self.stable_instruments if self.stable_instruments else None

    def as_dict(self) -> dict[str, object]:
        return {
            "kinds": {name: k.as_dict() for name, k in self.kinds.items()},
            "instant_shifts": self.instant_shifts,
            "instant_shifts_flagged": self.instant_shifts_flagged,
            "unobservable_drifts": self.unobservable_drifts,
            "stable_instruments": self.stable_instruments,
            "stable_flagged": self.stable_flagged,
            "stable_instrument_years": self.stable_instrument_years,
            "false_alarms_per_instrument_year": self.false_alarms_per_instrument_year,
            "stable_flagged_fraction": self.stable_flagged_fraction,
            "stable_predicted": self.stable_predicted,
            "false_alarm_causes": self.false_alarm_causes,
            "false_alarms_by_reference": self.false_alarms_by_reference,
            "false_alarms_without_certificate": self.false_alarms_without_certificate,
        }


def score(outcomes: Iterable[InstrumentOutcome]) -> BenchScore:
    """Score the outcomes of any number of seeds (only instruments with a reference count)."""
    by_kind: dict[str, list[InstrumentOutcome]] = {k.value: [] for k in KINDS}
    instant = instant_flagged = unobservable = 0
    stable = stable_flagged = stable_predicted = uncertified = 0
    stable_years = 0.0
    causes: Counter[str] = Counter()
    by_reference: dict[str, list[int]] = {}
    for o in outcomes:
        if o.behaviour is Behaviour.STABLE:
            if not o.observable:
                continue
            stable += 1
            stable_years += o.window_days / DAYS_PER_YEAR
            counts = by_reference.setdefault(o.reference_kind, [0, 0])
            counts[1] += 1
            if o.flagged_at is not None:
                stable_flagged += 1
                counts[0] += 1
                causes[o.flag_cause or "?"] += 1
                uncertified += o.flag_certified is False
            stable_predicted += o.predicted_oot_at is not None
            continue
        if not o.behaviour.drifts:
            continue  # stuck values and dropouts are data-quality faults
        if not o.observable:
            unobservable += 1
            continue
        if o.instant_shift:
            instant += 1
            instant_flagged += o.flagged_at is not None
            continue
        by_kind[o.behaviour.value].append(o)
    kinds = {name: _kind_score(name, drifts) for name, drifts in by_kind.items()}
    kinds[ALL] = _kind_score(ALL, [o for drifts in by_kind.values() for o in drifts])
    return BenchScore(
        kinds=kinds,
        instant_shifts=instant,
        instant_shifts_flagged=instant_flagged,
        unobservable_drifts=unobservable,
        stable_instruments=stable,
        stable_flagged=stable_flagged,
        stable_instrument_years=stable_years,
        stable_predicted=stable_predicted,
        false_alarm_causes=dict(causes.most_common()),
        false_alarms_by_reference=dict(sorted(by_reference.items())),
        false_alarms_without_certificate=uncertified,
    )


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
    leaving tolerance) is :func:`score`'s; this is its summary for one run.
    """
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
