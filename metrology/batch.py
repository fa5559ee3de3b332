"""What processing produces for one batch of readings: the unit the sinks write at once."""

from __future__ import annotations

from dataclasses import dataclass, field

from metrology.assessment import Assessment, HealthSnapshot, StatusChange
from metrology.reading import Reading
from metrology.wire import DeadLetter


@dataclass(slots=True)
class OutputBatch:
    """Everything one pipeline batch produces; a store writes it in ONE transaction.

    ``snapshots`` are the latest state per instrument (upserted); ``changes`` are alert events,
    which are also the status history; ``dead_letters`` are refused inputs with their reasons.
    """

    readings: list[tuple[Reading, Assessment]] = field(default_factory=list)
    snapshots: list[HealthSnapshot] = field(default_factory=list)
    changes: list[StatusChange] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.readings) + len(self.snapshots) + len(self.changes) + len(self.dead_letters)
