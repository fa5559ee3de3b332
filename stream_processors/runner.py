"""The embedded runner: keyed per-instrument processing of a fleet in one process.

It owns the state of every instrument (a dict of immutable states, re-assigned after every
`step`), supplies peer-consensus references, and re-evaluates time-driven conditions on the
clock. Event time drives everything: the clock is the newest reading time seen (the watermark),
so a replay or a simulation faster than the wall clock is judged exactly like live data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from metrology.assessment import Assessment, HealthSnapshot, StatusChange
from metrology.fleet import Fleet
from metrology.instrument import InstrumentSpec, ReferenceKind
from metrology.reading import Reading
from stream_processors.peers import PeerBoard
from stream_processors.policy import ProcessingPolicy
from stream_processors.state import InstrumentState
from stream_processors.step import InstrumentContext, assess_clock, describe, step


def _with_rule(policy: ProcessingPolicy, spec: InstrumentSpec) -> ProcessingPolicy:
    """The policy with the decision rule the fleet file sets for the instrument or its tenant."""
    if spec.decision_rule is None or spec.decision_rule == policy.decision_rule:
        return policy
    return replace(policy, decision_rule=spec.decision_rule)


@dataclass(slots=True)
class ProcessorOutput:
    """What a batch of readings produced."""

    assessed: list[tuple[Reading, Assessment]] = field(default_factory=list)
    changes: list[StatusChange] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    failed: list[tuple[Reading, Exception]] = field(default_factory=list)
    """Readings `step` could not process: kept apart with the error, the rest go on."""


class FleetProcessor:
    """Runs `step` for every reading of a fleet, keyed by instrument."""

    def __init__(
        self,
        fleet: Fleet,
        policy_for: Callable[[str], ProcessingPolicy] | ProcessingPolicy | None = None,
    ) -> None:
        if policy_for is None:
            policy_for = ProcessingPolicy()
        if isinstance(policy_for, ProcessingPolicy):
            shared = policy_for
            policy_for = lambda _instrument: shared  # noqa: E731
        self.contexts: dict[str, InstrumentContext] = {
            instrument_id: InstrumentContext(
                spec, fleet.calibrations[instrument_id], _with_rule(policy_for(instrument_id), spec)
            )
            for instrument_id, spec in fleet.instruments.items()
        }
        self.states: dict[str, InstrumentState] = {i: InstrumentState() for i in fleet.instruments}
        self._peer_group = {
            i: spec.reference.peer_group
            for i, spec in fleet.instruments.items()
            if spec.reference.kind is ReferenceKind.PEER_GROUP and spec.reference.peer_group
        }
        self._board = PeerBoard()
        self.watermark: float | None = None

    def process(self, readings: Iterable[Reading]) -> ProcessorOutput:
        """Process admitted readings (registered units), in order; returns what they produced."""
        output = ProcessorOutput()
        batch = list(readings)
        if self._peer_group:
            batch = self._with_peer_references(batch)
        contexts, states = self.contexts, self.states
        assessed, changes, touched = output.assessed, output.changes, output.touched
        newest = self.watermark
        for reading in batch:
            instrument_id = reading.instrument_id
            try:
                state, assessment, change = step(
                    states[instrument_id], reading, contexts[instrument_id]
                )
            except (
                Exception
            ) as exc:  # one bad reading must not stop the fleet; logged by the caller
                output.failed.append((reading, exc))
                continue
            states[instrument_id] = state
            assessed.append((reading, assessment))
            touched.add(instrument_id)
            if change is not None:
                changes.append(change)
            if newest is None or reading.ts > newest:
                newest = reading.ts
        self.watermark = newest
        return output

    def _with_peer_references(self, batch: list[Reading]) -> list[Reading]:
        """Post every peer reading's corrected value first, then give each its peers' consensus.

        A peer flagged for drift in its calibration period, or without a certificate in force,
        serves nobody as a reference (a drifting peer must not drag the consensus,
        METROLOGY.md). Three consistent peers are required where the group has three that can
        serve besides the instrument under test, so one undetected faulty peer is outvoted;
        else two.
        """
        groups = self._peer_group
        at = max(reading.ts for reading in batch) if batch else 0.0
        serving = Counter(
            group for instrument_id, group in groups.items() if self._can_serve(instrument_id, at)
        )
        for reading in batch:
            group = groups.get(reading.instrument_id)
            if group is None or self._drift_flagged(reading.instrument_id):
                continue
            history = self.contexts[reading.instrument_id].calibrations
            corrected, record = history.correct(reading.ts, reading.value)
            if record is None or not record.standard_uncertainty > 0.0:
                continue  # a peer without a calibration in force cannot serve as a reference
            self._board.post(
                group, reading.instrument_id, reading.ts, corrected, record.standard_uncertainty
            )
        completed: list[Reading] = []
        for reading in batch:
            group = groups.get(reading.instrument_id)
            if group is not None and reading.reference is None:
                others = serving[group] - self._can_serve(reading.instrument_id, at)
                reference = self._board.reference_for(
                    group, reading.instrument_id, reading.ts, max(2, min(3, others))
                )
                if reference is not None:
                    reading = reading._replace(
                        reference=reference.value, u_reference=reference.standard_uncertainty
                    )
            completed.append(reading)
        return completed

    def _can_serve(self, instrument_id: str, at: float) -> bool:
        """A certificate in force and no drift flag: the member may be another's reference."""
        record = self.contexts[instrument_id].calibrations.valid_at(at)
        return record is not None and not self._drift_flagged(instrument_id)

    def _drift_flagged(self, instrument_id: str) -> bool:
        tracking = self.states[instrument_id].tracking
        return tracking.drift_since is not None or tracking.out_of_tolerance_since is not None

    def sweep(self, now: float | None = None) -> list[StatusChange]:
        """Re-evaluate OFFLINE and due dates of every instrument at ``now`` (default: watermark)."""
        at = self.watermark if now is None else now
        if at is None:
            return []
        changes: list[StatusChange] = []
        for instrument_id, context in self.contexts.items():
            state, change = assess_clock(self.states[instrument_id], context, at)
            if change is not None:
                self.states[instrument_id] = state
                changes.append(change)
        return changes

    def snapshots(
        self, instrument_ids: Iterable[str], at: float | None = None
    ) -> list[HealthSnapshot]:
        """Current health of the given instruments (those that have reported)."""
        when = self.watermark if at is None else at
        result = []
        for instrument_id in instrument_ids:
            state = self.states[instrument_id]
            if state.status is None:
                continue
            result.append(describe(state, self.contexts[instrument_id], when or 0.0))
        return result
