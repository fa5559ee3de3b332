"""The per-key part of processing, shared by the embedded runner and the Faust agent.

A key is one instrument, or one peer group (its members reference each other, so they are
processed together). Both engines hold the states somewhere of their own (a dict in the
embedded runner, a Faust table in a worker), load the ones a batch of readings needs into a
mapping, call :func:`complete_peer_references` and :func:`step_readings` on it, and keep what
comes back. Nothing here knows where the states live.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field, replace

from metrology.assessment import Assessment, StatusChange
from metrology.calibration import CalibrationHistory
from metrology.fleet import Fleet
from metrology.instrument import InstrumentSpec, ReferenceKind
from metrology.reading import Reading
from stream_processors.context import InstrumentContext
from stream_processors.peers import PeerBoard
from stream_processors.policy import ProcessingPolicy
from stream_processors.state import InstrumentState
from stream_processors.step import step

__all__ = [
    "ProcessorOutput",
    "can_serve",
    "complete_peer_references",
    "drift_flagged",
    "instrument_contexts",
    "peer_groups",
    "policy_with_rule",
    "step_readings",
]


@dataclass(slots=True)
class ProcessorOutput:
    """What a batch of readings produced."""

    assessed: list[tuple[Reading, Assessment]] = field(default_factory=list)
    changes: list[StatusChange] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    failed: list[tuple[Reading, Exception]] = field(default_factory=list)
    """Readings `step` could not process: kept apart with the error, the rest go on."""


def policy_with_rule(policy: ProcessingPolicy, spec: InstrumentSpec) -> ProcessingPolicy:
    """The policy with the decision rule the fleet file sets for the instrument or its tenant."""
    if spec.decision_rule is None or spec.decision_rule == policy.decision_rule:
        return policy
    return replace(policy, decision_rule=spec.decision_rule)


def instrument_contexts(
    fleet: Fleet,
    policy_for: Callable[[str], ProcessingPolicy] | ProcessingPolicy | None = None,
    calibrations: Mapping[str, CalibrationHistory] | None = None,
) -> dict[str, InstrumentContext]:
    """What `step` needs per instrument: its spec, calibrations and policy (with its rule).

    ``calibrations`` replaces the fleet file's histories where it has one (a worker's
    calibration table).
    """
    if policy_for is None:
        policy_for = ProcessingPolicy()
    if isinstance(policy_for, ProcessingPolicy):
        shared = policy_for
        policy_for = lambda _instrument: shared  # noqa: E731
    histories = (
        fleet.calibrations if calibrations is None else {**fleet.calibrations, **calibrations}
    )
    return {
        instrument_id: InstrumentContext(
            spec, histories[instrument_id], policy_with_rule(policy_for(instrument_id), spec)
        )
        for instrument_id, spec in fleet.instruments.items()
    }


def peer_groups(instruments: Mapping[str, InstrumentSpec]) -> dict[str, str]:
    """The peer group of every instrument that takes its reference from one."""
    return {
        i: spec.reference.peer_group
        for i, spec in instruments.items()
        if spec.reference.kind is ReferenceKind.PEER_GROUP and spec.reference.peer_group
    }


def step_readings(
    batch: Iterable[Reading],
    contexts: Mapping[str, InstrumentContext],
    states: MutableMapping[str, InstrumentState],
    output: ProcessorOutput,
    newest: float | None,
) -> float | None:
    """Run `step` for every reading in order, re-assigning each state; returns the newest time.

    One bad reading must not stop the others: its error is kept in ``output.failed`` (the
    caller turns it into a dead letter with
    :func:`~stream_processors.dead_letters.dead_letters_of_failed`).
    """
    assessed, changes, touched = output.assessed, output.changes, output.touched
    for reading in batch:
        instrument_id = reading.instrument_id
        try:
            state, assessment, change = step(
                states[instrument_id], reading, contexts[instrument_id]
            )
        except Exception as exc:
            output.failed.append((reading, exc))
            continue
        states[instrument_id] = state
        assessed.append((reading, assessment))
        touched.add(instrument_id)
        if change is not None:
            changes.append(change)
        if newest is None or reading.ts > newest:
            newest = reading.ts
    return newest


def complete_peer_references(
    batch: list[Reading],
    contexts: Mapping[str, InstrumentContext],
    states: Mapping[str, InstrumentState],
    groups: Mapping[str, str],
    board: PeerBoard,
) -> list[Reading]:
    """Post every peer reading's corrected value first, then give each its peers' consensus.

    A peer flagged for drift in its calibration period, or without a certificate in force,
    serves nobody as a reference (a drifting peer must not drag the consensus,
    METROLOGY.md). Three consistent peers are required where the group has three that can
    serve besides the instrument under test, so one undetected faulty peer is outvoted;
    else two.

    ``states`` must hold every member of the groups the batch's readings belong to (``groups``
    maps instrument -> group, for those members at least).
    """
    at = max(reading.ts for reading in batch) if batch else 0.0
    present = {groups[r.instrument_id] for r in batch if r.instrument_id in groups}
    serving = Counter(
        group
        for instrument_id, group in groups.items()
        if group in present and can_serve(contexts[instrument_id], states[instrument_id], at)
    )
    for reading in batch:
        group = groups.get(reading.instrument_id)
        if group is None or drift_flagged(states[reading.instrument_id]):
            continue
        history = contexts[reading.instrument_id].calibrations
        corrected, record = history.correct(reading.ts, reading.value)
        if record is None or not record.standard_uncertainty > 0.0:
            continue  # a peer without a calibration in force cannot serve as a reference
        board.post(group, reading.instrument_id, reading.ts, corrected, record.standard_uncertainty)
    completed: list[Reading] = []
    for reading in batch:
        group = groups.get(reading.instrument_id)
        if group is not None and reading.reference is None:
            instrument_id = reading.instrument_id
            others = serving[group] - can_serve(contexts[instrument_id], states[instrument_id], at)
            reference = board.reference_for(
                group, instrument_id, reading.ts, max(2, min(3, others))
            )
            if reference is not None:
                reading = reading._replace(
                    reference=reference.value, u_reference=reference.standard_uncertainty
                )
        completed.append(reading)
    return completed


def can_serve(context: InstrumentContext, state: InstrumentState, at: float) -> bool:
    """A certificate in force and no drift flag: the member may be another's reference."""
    return context.calibrations.valid_at(at) is not None and not drift_flagged(state)


def drift_flagged(state: InstrumentState) -> bool:
    tracking = state.tracking
    return tracking.drift_since is not None or tracking.out_of_tolerance_since is not None
