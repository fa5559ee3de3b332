"""Running the detection benchmark: seeds simulated and fed through `step`, then scored.

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

What is scored (only instruments with a reference; :mod:`edge_sim.scoring` scores it):

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

The per-seed work (:func:`run_seed`) and the scoring (:func:`edge_sim.scoring.outcomes_of`,
:func:`edge_sim.scoring.score`) are pure functions of their arguments.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from queue import Empty

from calstream.evaluation.detection.goals import goals
from edge_sim.fleetgen import generate_fleet_document
from edge_sim.scoring import (
    BenchScore,
    FirstFlag,
    FirstPrediction,
    InstrumentOutcome,
    outcomes_of,
    score,
)
from edge_sim.simulator import FleetSimulator
from edge_sim.truth import GroundTruth
from ingest.admission import Admission, AdmissionPolicy
from metrology.fleet import load_fleet
from metrology.health import DRIFT_CONDITIONS
from metrology.timebase import SECONDS_PER_DAY
from metrology.wire import DecodedMessage, readings_topic
from stream_processors.context import InstrumentContext
from stream_processors.policy import ProcessingPolicy
from stream_processors.runner import FleetProcessor
from stream_processors.state import InstrumentState
from stream_processors.step import step

DETECT_BENCH_AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
"""End of every simulated window (the fleets' ``as_of``)."""
FLEET_SEED_OFFSET = 1000
"""Fleet seed = simulation seed + this: each seed scores a different instrument mix."""
DAYS_PER_YEAR = 365.25

DEFAULT_SEEDS = 20
DEFAULT_INSTRUMENTS = 60
DEFAULT_SIM_DAYS = 365.0
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
            "goals": goals(self.score),
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
