"""`calstream detect-bench`: drift-detection quality against the simulator's ground truth.

For each seed a fleet is generated (:func:`edge_sim.fleetgen.generate_fleet_document`, its own
fleet seed so the instrument mix varies), simulated over a window (:class:`FleetSimulator`) and
fed straight into :meth:`FleetProcessor.process` -- the same `step` the pipeline runs -- with no
MQTT and no storage. Every simulated message goes through :class:`ingest.admission.Admission`
first, so readings reported in an alternative unit are converted exactly as ingest converts them.
The simulator publishes one message per gateway and publish interval (an hour), each processed
as one batch, so each instrument's readings reach `step` in the same order as in the pipeline and
peers of a group (same gateway, same reporting times) find each other in the batch. When an
instrument shows its first drift flag or first predicted out-of-tolerance date after a batch, its
readings of that batch are replayed through `step` (pure) from its state before the batch, to
find exactly which reading raised it (`step.py` is not changed for the bench).

What is scored (only instruments with a reference; see :mod:`calstream.scoring`):

- detection before true out of tolerance: first flag (DRIFTING, AT_RISK or OUT_OF_TOLERANCE)
  no later than ``true_oot_at``, among drifts whose true error leaves tolerance in the window;
  step shifts that jump straight out of tolerance are counted apart;
- delay from drift onset to the first flag, and the warning lead before the true OOT time;
- false alarms on stable instruments: flagged instruments per stable instrument-year, and the
  fraction of stable instruments flagged;
- the first best estimate of the out-of-tolerance date of each drift that leaves tolerance (the
  fitted line's crossing, ``estimated_oot_at``, given once its inverse-prediction uncertainty is
  small against the time left; the prediction band's earlier date, which raises AT_RISK, is
  conservative by design and not scored): ``|estimated - true_oot| / (true_oot - made_at)``, the
  error relative to the time that was left when the first estimate was made.

The per-seed work (:func:`run_seed`) and the scoring (:func:`outcomes_of`, :func:`score`) are
pure functions of their arguments.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from queue import Empty

from rich.console import Group
from rich.table import Table
from rich.text import Text

from edge_sim.behaviour import Behaviour
from edge_sim.fleetgen import generate_fleet_document
from edge_sim.simulator import FleetSimulator
from edge_sim.truth import GroundTruth
from ingest.admission import Admission, AdmissionPolicy
from metrology.fleet import load_fleet
from metrology.health import DRIFT_CONDITIONS
from metrology.instrument import ReferenceKind
from metrology.timebase import SECONDS_PER_DAY
from metrology.wire import DecodedMessage, readings_topic
from stream_processors.policy import ProcessingPolicy
from stream_processors.runner import FleetProcessor
from stream_processors.state import InstrumentState
from stream_processors.step import InstrumentContext, step

DETECT_BENCH_AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
"""End of every simulated window (the fleets' ``as_of``)."""
FLEET_SEED_OFFSET = 1000
"""Fleet seed = simulation seed + this: each seed scores a different instrument mix."""
DAYS_PER_YEAR = 365.25

DEFAULT_SEEDS = 20
DEFAULT_INSTRUMENTS = 60
DEFAULT_SIM_DAYS = 365.0

TARGET_DETECTION_RATE = 0.95
"""Issue target: at least 95 % of drifts leaving tolerance flagged before they do."""
TARGET_FALSE_ALARMS = 0.01
"""Issue target: at most 1 % false alarms (per stable instrument-year, and share flagged)."""
TARGET_DATE_ERROR = 0.10
"""Issue target: median error of the first predicted OOT date <= 10 % of the time then left."""

KINDS: tuple[Behaviour, ...] = (
    Behaviour.LINEAR_DRIFT,
    Behaviour.RANDOM_WALK_DRIFT,
    Behaviour.STEP_SHIFT,
)
ALL = "all"


# --- one seed -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeedCase:
    """One benchmark run: a generated fleet simulated over a window ending at ``as_of``."""

    seed: int
    instruments: int = DEFAULT_INSTRUMENTS
    sim_days: float = DEFAULT_SIM_DAYS
    fleet_seed: int | None = None
    """Seed of the generated fleet; default ``seed + FLEET_SEED_OFFSET``."""
    as_of: datetime = DETECT_BENCH_AS_OF

    @property
    def fleet_seed_used(self) -> int:
        return self.seed + FLEET_SEED_OFFSET if self.fleet_seed is None else self.fleet_seed


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
class SeedRun:
    """What one seed produced: the truth and the first flag and prediction of each instrument."""

    case: SeedCase
    truth: GroundTruth
    first_flags: dict[str, FirstFlag]
    first_predictions: dict[str, FirstPrediction]
    uncertified_at_oot: frozenset[str]
    """Instruments with no calibration certificate in force when they truly left tolerance:
    nothing to correct with and no uncertainty to judge by, so no date can be predicted."""
    readings: int
    rejected: int
    failed: int
    elapsed_s: float
    cpu_s: float
    """CPU time of the run (the wall time above also counts waiting for a busy machine)."""


def _flag_cause(state: InstrumentState) -> str:
    for condition in state.conditions:  # most severe first
        if condition in DRIFT_CONDITIONS:
            if condition.name == "DRIFTING":
                return f"DRIFTING/{state.tracking.drift_detector or '?'}"
            return condition.name
    return "?"


def _first_flag(state: InstrumentState, context: InstrumentContext) -> FirstFlag:
    at = state.first_drift_at
    assert at is not None
    return FirstFlag(at, _flag_cause(state), context.calibrations.valid_at(at) is not None)


def _may_have_predicted(before: InstrumentState, after: InstrumentState, every: int) -> bool:
    """Whether a prediction may have come and gone within a batch (recomputed twice or more)."""
    b, a = before.tracking, after.tracking
    if a.certificate_id != b.certificate_id:
        return a.fit.n >= every
    return a.fit.n // every - b.fit.n // every >= 2


def run_seed(
    case: SeedCase,
    policy: ProcessingPolicy | None = None,
    on_day: Callable[[float], None] | None = None,
) -> SeedRun:
    """Simulate ``case`` and run every reading through admission and the fleet processor.

    ``on_day(days)`` is called as simulated days complete (progress only).
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    fleet = load_fleet(generate_fleet_document(case.instruments, case.fleet_seed_used, case.as_of))
    end = case.as_of.timestamp()
    start = end - case.sim_days * SECONDS_PER_DAY
    # One message per gateway and publish interval: batch_size never cuts an instant in two.
    simulator = FleetSimulator(fleet, seed=case.seed, start=start, end=end, batch_size=10**9)
    admission = Admission(
        fleet.instruments, AdmissionPolicy(max_age_days=max(3650.0, case.sim_days + 1.0))
    )
    processor_policy = policy or ProcessingPolicy()
    processor = FleetProcessor(fleet, processor_policy)
    states = processor.states
    first_flags: dict[str, FirstFlag] = {}
    first_predictions: dict[str, FirstPrediction] = {}
    readings = rejected = failed = 0
    next_day = start + SECONDS_PER_DAY
    contexts = processor.contexts
    every = processor_policy.prediction_every
    for tenant, site, gateway, batch in simulator:
        message = DecodedMessage(readings_topic(tenant, site, gateway), batch, [])
        admitted, rejections = admission.admit(message, batch[-1].ts)
        readings += len(batch)
        rejected += len(rejections)
        before = dict(states)
        output = processor.process(admitted)
        failed += len(output.failed)
        for instrument_id in output.touched:
            state = states[instrument_id]
            flag_news = state.first_drift_at is not None and instrument_id not in first_flags
            prediction_news = instrument_id not in first_predictions and (
                state.tracking.estimated_oot_at is not None
                or _may_have_predicted(before[instrument_id], state, every)
            )
            if not (flag_news or prediction_news):
                continue
            # `step` is pure: replay this instrument's readings of the batch (as the processor
            # completed them, peer references included) to find the reading that did it.
            replayed = before[instrument_id]
            context = contexts[instrument_id]
            for reading, _ in output.assessed:
                if reading.instrument_id != instrument_id:
                    continue
                replayed, _, _ = step(replayed, reading, context)
                if flag_news and replayed.first_drift_at is not None:
                    first_flags[instrument_id] = _first_flag(replayed, context)
                    flag_news = False
                estimated = replayed.tracking.estimated_oot_at
                if prediction_news and estimated is not None:
                    first_predictions[instrument_id] = FirstPrediction(reading.ts, estimated)
                    prediction_news = False
                if not (flag_news or prediction_news):
                    break
            if flag_news and state.first_drift_at is not None:  # not expected: replay is exact
                first_flags[instrument_id] = _first_flag(state, context)
            estimated = state.tracking.estimated_oot_at
            if prediction_news and estimated is not None:
                first_predictions[instrument_id] = FirstPrediction(
                    state.last_reading_at or batch[-1].ts, estimated
                )
        if on_day is not None and batch[-1].ts >= next_day:
            days = math.floor((batch[-1].ts - start) / SECONDS_PER_DAY)
            on_day(float(days))
            next_day = start + (days + 1) * SECONDS_PER_DAY
    if on_day is not None:
        on_day(case.sim_days)
    truth = simulator.truth
    uncertified = frozenset(
        i
        for i, t in truth.instruments.items()
        if t.true_oot_at is not None and contexts[i].calibrations.valid_at(t.true_oot_at) is None
    )
    return SeedRun(
        case=case,
        truth=truth,
        first_flags=first_flags,
        first_predictions=first_predictions,
        uncertified_at_oot=uncertified,
        readings=readings,
        rejected=rejected,
        failed=failed,
        elapsed_s=time.perf_counter() - started,
        cpu_s=time.process_time() - cpu_started,
    )


# --- scoring --------------------------------------------------------------------------------


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
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


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

    def targets(self) -> dict[str, dict[str, object]]:
        """The issue's targets beside the measured figures."""
        overall = self.kinds[ALL]
        rows: list[tuple[str, float | None, str, bool | None]] = []
        rate = overall.detection_rate
        rows.append(
            (
                "detection_rate_before_oot",
                rate,
                f">= {TARGET_DETECTION_RATE:.0%}",
                None if rate is None else rate >= TARGET_DETECTION_RATE,
            )
        )
        per_year = self.false_alarms_per_instrument_year
        rows.append(
            (
                "false_alarms_per_instrument_year",
                per_year,
                f"<= {TARGET_FALSE_ALARMS:.0%}",
                None if per_year is None else per_year <= TARGET_FALSE_ALARMS,
            )
        )
        fraction = self.stable_flagged_fraction
        rows.append(
            (
                "stable_flagged_fraction",
                fraction,
                f"<= {TARGET_FALSE_ALARMS:.0%}",
                None if fraction is None else fraction <= TARGET_FALSE_ALARMS,
            )
        )
        error = overall.date_error_median
        rows.append(
            (
                "date_error_median",
                error,
                f"<= {TARGET_DATE_ERROR:.0%} of the time left",
                None if error is None else error <= TARGET_DATE_ERROR,
            )
        )
        return {name: {"value": v, "target": t, "met": m} for name, v, t, m in rows}

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
            "targets": self.targets(),
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


# --- many seeds -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DetectBenchResult:
    cases: list[SeedCase]
    outcomes: list[InstrumentOutcome]
    score: BenchScore
    readings: int
    rejected: int
    failed: int
    elapsed_s: float
    seed_wall_s: float
    """Sum of the per-seed run times (more than ``elapsed_s`` with several workers)."""
    seed_cpu_s: float
    """Sum of the per-seed CPU times: the cost of the figures, whatever else runs."""
    workers: int
    seed_errors: dict[int, str] = field(default_factory=dict)
    """Seeds whose run raised, with the error: left out of the figures."""

    def as_document(self) -> dict[str, object]:
        first = self.cases[0] if self.cases else SeedCase(0)
        return {
            "seeds": [c.seed for c in self.cases],
            "seed_errors": {str(seed): error for seed, error in self.seed_errors.items()},
            "seeds_scored": len(self.cases) - len(self.seed_errors),
            "fleet_seeds": [c.fleet_seed_used for c in self.cases],
            "instruments": first.instruments,
            "sim_days": first.sim_days,
            "as_of": first.as_of.isoformat(),
            "readings": self.readings,
            "rejected": self.rejected,
            "failed": self.failed,
            "elapsed_s": self.elapsed_s,
            "seed_wall_s": self.seed_wall_s,
            "seed_cpu_s": self.seed_cpu_s,
            "workers": self.workers,
            "cpu_count": os.cpu_count(),
            **self.score.as_dict(),
        }


_progress_queue: Queue[tuple[int, float]] | None = None
"""In a worker process: where simulated days completed are reported (set by the initializer)."""


def _init_worker(queue: Queue[tuple[int, float]]) -> None:
    global _progress_queue
    _progress_queue = queue


def _run_seed_task(case: SeedCase, policy: ProcessingPolicy | None) -> SeedRun:
    queue = _progress_queue

    def day(days: float) -> None:
        if queue is not None:
            queue.put((case.seed, days))

    return run_seed(case, policy, day)


def run_detect_bench(
    cases: Sequence[SeedCase],
    policy: ProcessingPolicy | None = None,
    workers: int = 1,
    on_progress: Callable[[float], None] | None = None,
) -> DetectBenchResult:
    """Run every case (in ``workers`` processes when more than one) and score them together.

    ``on_progress(days)`` receives the simulated days completed so far, summed over the seeds.
    """
    started = time.perf_counter()
    runs: list[SeedRun] = []
    errors: dict[int, str] = {}
    workers = max(1, min(workers, len(cases)))
    if workers == 1:
        done = 0.0
        for case in cases:

            def day(days: float, base: float = done) -> None:
                if on_progress is not None:
                    on_progress(base + days)

            try:
                runs.append(run_seed(case, policy, day))
            except Exception as exc:  # one broken seed must not hide the others' figures
                errors[case.seed] = f"{type(exc).__name__}: {exc}"
            done += case.sim_days
    else:
        # spawn: the parent runs a progress thread, and a forked child would inherit its locks
        context = multiprocessing.get_context("spawn")
        queue: Queue[tuple[int, float]] = context.Queue()
        days_done: dict[int, float] = {}
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(queue,)
        ) as pool:
            submitted = {pool.submit(_run_seed_task, case, policy): case for case in cases}
            pending = set(submitted)
            while pending:
                finished, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                for future in finished:
                    case = submitted[future]
                    days_done[case.seed] = case.sim_days
                    try:
                        runs.append(future.result())
                    except Exception as exc:  # one broken seed must not hide the others' figures
                        errors[case.seed] = f"{type(exc).__name__}: {exc}"
                while True:
                    try:
                        seed, days = queue.get_nowait()
                    except Empty:
                        break
                    days_done[seed] = max(days_done.get(seed, 0.0), days)
                if on_progress is not None:
                    on_progress(sum(days_done.values()))
        runs.sort(key=lambda r: cases.index(r.case))
    outcomes = [
        o
        for run in runs
        for o in outcomes_of(
            run.truth,
            run.first_flags,
            run.first_predictions,
            run.case.seed,
            run.uncertified_at_oot,
        )
    ]
    return DetectBenchResult(
        cases=list(cases),
        outcomes=outcomes,
        score=score(outcomes),
        readings=sum(r.readings for r in runs),
        rejected=sum(r.rejected for r in runs),
        failed=sum(r.failed for r in runs),
        elapsed_s=time.perf_counter() - started,
        seed_wall_s=sum(r.elapsed_s for r in runs),
        seed_cpu_s=sum(r.cpu_s for r in runs),
        workers=workers,
        seed_errors=dict(sorted(errors.items())),
    )


def seed_cases(
    seeds: int, instruments: int, sim_days: float, first_seed: int = 1
) -> list[SeedCase]:
    """``seeds`` cases with simulation seeds ``first_seed, first_seed + 1, ...``."""
    return [
        SeedCase(seed=s, instruments=instruments, sim_days=sim_days)
        for s in range(first_seed, first_seed + seeds)
    ]


# --- rendering ------------------------------------------------------------------------------


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


_SHORT_CAUSES = {"OUT_OF_TOLERANCE": "OOT", "DRIFTING/CUSUM": "CUSUM", "DRIFTING/EWMA": "EWMA"}


def _causes(causes: Mapping[str, int]) -> str:
    return (
        ", ".join(f"{_SHORT_CAUSES.get(cause, cause)} {count}" for cause, count in causes.items())
        or "-"
    )


def detect_bench_tables(result: DetectBenchResult) -> Group:
    """The figures as rich tables (detection, predicted date, false alarms, targets)."""
    s = result.score
    first = result.cases[0] if result.cases else SeedCase(0)
    title = (
        f"calstream detect-bench: {len(result.cases)} seeds x {first.instruments} instruments "
        f"x {first.sim_days:g} days"
    )
    detection = Table(title=f"{title}\nDetection before the true out-of-tolerance time")
    for column in (
        "drift kind",
        "leave tol.",
        "before OOT",
        "by a warning",
        "late",
        "missed",
        "rate",
        "onset->flag d (med/p90)",
        "lead d (med/p90)",
        "within tol. flagged",
        "flagged before onset",
        "first flag by (leaving tol.)",
    ):
        detection.add_column(
            column, justify="left" if column.startswith(("drift", "first")) else "right"
        )
    for name, k in s.kinds.items():
        detection.add_row(
            name if name != Behaviour.STEP_SHIFT.value else "step_shift (within tol.)",
            str(k.leaving_tolerance),
            str(k.detected_before_oot),
            str(k.warned_before_oot),
            str(k.detected_late),
            str(k.missed),
            _share(k.detection_rate),
            f"{_days(k.delay_days_median)} / {_days(k.delay_days_p90)}",
            f"{_days(k.lead_days_median)} / {_days(k.lead_days_p90)}",
            f"{k.within_tolerance_flagged}/{k.within_tolerance}",
            str(k.flagged_before_onset),
            _causes(k.first_flag_causes),
            style="bold" if name == ALL else None,
        )
    detection.caption = (
        "by a warning: first flag DRIFTING (CUSUM, EWMA) or AT_RISK, not an out-of-tolerance "
        f"residual (OOT). Apart: {s.instant_shifts} step shifts straight out of tolerance "
        f"({s.instant_shifts_flagged} flagged); {s.unobservable_drifts} drifts without a "
        "reference (UNVERIFIED, not scored)"
    )
    prediction = Table(title="First predicted out-of-tolerance date (drifts leaving tolerance)")
    for column in (
        "drift kind",
        "leave tol.",
        "first prediction before OOT",
        "only after OOT",
        "never (no certificate)",
        "|error| / time left (med/p90)",
        "signed (med)",
    ):
        prediction.add_column(column, justify="left" if column == "drift kind" else "right")
    for name, k in s.kinds.items():
        if name == Behaviour.STEP_SHIFT.value:
            continue  # a step shift within tolerance never leaves it
        prediction.add_row(
            name,
            str(k.leaving_tolerance),
            str(k.predicted_before_oot),
            str(k.predicted_after_oot),
            f"{k.never_predicted} ({k.never_predicted_uncertified})",
            f"{_share(k.date_error_median)} / {_share(k.date_error_p90)}",
            _share(k.date_bias_median),
            style="bold" if name == ALL else None,
        )
    prediction.caption = "signed < 0: predicted too early"
    alarms = Table(title="False alarms on stable instruments with a reference")
    for column in ("stable", "instrument-years", "flagged", "per instrument-year", "share"):
        alarms.add_column(column, justify="right")
    alarms.add_column("first flag by", justify="left")
    alarms.add_column("flagged/stable by reference", justify="left")
    alarms.add_row(
        str(s.stable_instruments),
        f"{s.stable_instrument_years:.1f}",
        str(s.stable_flagged),
        _share(s.false_alarms_per_instrument_year),
        _share(s.stable_flagged_fraction),
        _causes(s.false_alarm_causes),
        ", ".join(f"{kind} {f}/{n}" for kind, (f, n) in s.false_alarms_by_reference.items()),
    )
    alarms.caption = (
        f"first flagged with no certificate in force: {s.false_alarms_without_certificate}; "
        f"stable instruments that got a predicted OOT date: {s.stable_predicted}"
    )
    targets = Table(title="Targets (issue)")
    for column in ("figure", "value", "target", "met"):
        targets.add_column(column, justify="left" if column == "figure" else "right")
    for name, row in s.targets().items():
        value = row["value"]
        met = row["met"]
        targets.add_row(
            name,
            _share(value if isinstance(value, float) else None),
            str(row["target"]),
            "-" if met is None else ("[green]yes[/]" if met else "[red]no[/]"),
        )
    targets.caption = (
        f"{result.readings:,} readings ({result.rejected} rejected at admission, "
        f"{result.failed} failed in step) in {result.elapsed_s:.0f} s with {result.workers} "
        f"worker(s); seed runs took {result.seed_wall_s:.0f} s, "
        f"{result.seed_cpu_s:.0f} s of CPU"
    )
    parts: list[Table | Text] = [detection, prediction, alarms, targets]
    for seed, error in result.seed_errors.items():
        parts.append(Text(f"seed {seed} failed and is not scored: {error}", style="bold red"))
    return Group(*parts)
