"""The embedded runner: keyed per-instrument processing of a fleet in one process.

It owns the state of every instrument (a dict of immutable states, re-assigned after every
`step`), supplies peer-consensus references, and re-evaluates time-driven conditions on the
clock. Event time drives everything: the clock is the newest reading time seen (the watermark),
so a replay or a simulation faster than the wall clock is judged exactly like live data.
The per-key work (peer references, `step` per reading) is :mod:`stream_processors.keyed`, which
the Faust agent runs too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from metrology.assessment import HealthSnapshot, StatusChange
from metrology.calibration import CalibrationHistory
from metrology.fleet import Fleet
from metrology.instrument import InstrumentSpec
from metrology.reading import Reading
from stream_processors.context import InstrumentContext
from stream_processors.describe import describe
from stream_processors.keyed import (
    ProcessorOutput,
    complete_peer_references,
    instrument_contexts,
    peer_groups,
    policy_with_rule,
    step_readings,
)
from stream_processors.peers import PeerBoard
from stream_processors.policy import ProcessingPolicy
from stream_processors.state import InstrumentState
from stream_processors.step import assess_clock


class FleetProcessor:
    """Runs `step` for every reading of a fleet, keyed by instrument."""

    def __init__(
        self,
        fleet: Fleet,
        policy_for: Callable[[str], ProcessingPolicy] | ProcessingPolicy | None = None,
    ) -> None:
        self.contexts: dict[str, InstrumentContext] = instrument_contexts(fleet, policy_for)
        self.states: dict[str, InstrumentState] = {i: InstrumentState() for i in fleet.instruments}
        self._peer_group = peer_groups(fleet.instruments)
        self._board = PeerBoard()
        self.watermark: float | None = None
        self._policy_for = policy_for

    def put_instrument(self, spec: InstrumentSpec, calibrations: CalibrationHistory) -> None:
        """Process ``spec``'s readings from now on: a newly registered instrument, or a changed
        registration (its state carries over; a new certificate starts a new period by itself)."""
        policy = self._policy_for
        if policy is None:
            policy = ProcessingPolicy()
        elif not isinstance(policy, ProcessingPolicy):
            policy = policy(spec.instrument_id)
        instrument_id = spec.instrument_id
        self.contexts[instrument_id] = InstrumentContext(
            spec, calibrations, policy_with_rule(policy, spec)
        )
        self.states.setdefault(instrument_id, InstrumentState())
        self._peer_group.pop(instrument_id, None)
        self._peer_group.update(peer_groups({instrument_id: spec}))

    def put_calibrations(self, instrument_id: str, calibrations: CalibrationHistory) -> None:
        """Correct ``instrument_id``'s readings with ``calibrations`` from now on (each
        certificate applies from its calibration date)."""
        context = self.contexts.get(instrument_id)
        if context is not None:
            self.contexts[instrument_id] = InstrumentContext(
                context.spec, calibrations, context.policy
            )

    def process(self, readings: Iterable[Reading]) -> ProcessorOutput:
        """Process admitted readings (registered units), in order; returns what they produced."""
        output = ProcessorOutput()
        batch = list(readings)
        if self._peer_group:
            batch = complete_peer_references(
                batch, self.contexts, self.states, self._peer_group, self._board
            )
        self.watermark = step_readings(batch, self.contexts, self.states, output, self.watermark)
        return output

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
