"""What `step` needs to know about an instrument besides its state: spec, calibrations, policy."""

from __future__ import annotations

from dataclasses import dataclass, field

from metrology.calibration import CalibrationHistory
from metrology.instrument import InstrumentSpec, ReferenceKind
from stream_processors.policy import ProcessingPolicy

__all__ = ["InstrumentContext"]


@dataclass(frozen=True, slots=True)
class InstrumentContext:
    """What `step` needs to know about an instrument besides its state."""

    spec: InstrumentSpec
    calibrations: CalibrationHistory
    policy: ProcessingPolicy
    unverifiable: bool = field(init=False)
    """No reference relation: drift cannot be judged."""
    checked_by_standard: bool = field(init=False)
    """Readings that carry a reference measure a check standard (not a value in use)."""

    def __post_init__(self) -> None:
        kind = self.spec.reference.kind
        object.__setattr__(self, "unverifiable", kind is ReferenceKind.NONE)
        object.__setattr__(self, "checked_by_standard", kind is ReferenceKind.CHECK_STANDARD)
