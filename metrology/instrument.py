"""What the registry knows about an instrument: its measurand, unit, tolerance and reference."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from metrology.conformity import DecisionRule
from metrology.intervals import StaircasePolicy


class ReferenceKind(StrEnum):
    """Where the reference value that reveals drift comes from (METROLOGY.md, best first)."""

    CHECK_STANDARD = "check_standard"
    """A check standard measured from time to time; its value travels with the reading."""
    REFERENCE_INSTRUMENT = "reference_instrument"
    """A co-located reference instrument, reported with the reading."""
    PEER_GROUP = "peer_group"
    """Redundant peers measuring the same quantity at the same point: their consensus."""
    NONE = "none"
    """No reference: drift cannot be judged (UNVERIFIED)."""


@dataclass(frozen=True, slots=True)
class ReferenceRelation:
    """How an instrument is checked for drift."""

    kind: ReferenceKind
    peer_group: str | None = None
    """Name of the peer group (``kind == PEER_GROUP``)."""
    reference_instrument: str | None = None
    """Identifier of the co-located reference (``kind == REFERENCE_INSTRUMENT``), for the record."""


@dataclass(frozen=True, slots=True)
class Tolerance:
    """Maximum permissible error: ``lower <= e <= upper`` on the error of indication.

    Limits are absolute, in the instrument's registered unit; either may be ``None`` for a
    one-sided requirement. ``relative`` (a fraction of the reading) widens both limits by
    ``relative * |reading|`` when given (MPE stated as "a + b % of reading").
    """

    lower: float | None
    upper: float | None
    relative: float = 0.0

    def limits_at(self, reading: float) -> tuple[float | None, float | None]:
        """The absolute error limits that apply at ``reading``."""
        widen = self.relative * abs(reading)
        lower = None if self.lower is None else self.lower - widen
        upper = None if self.upper is None else self.upper + widen
        return lower, upper

    @property
    def half_width(self) -> float:
        """Half the tolerance interval (the larger one-sided limit when one side is open)."""
        sides = [abs(x) for x in (self.lower, self.upper) if x is not None]
        if self.lower is not None and self.upper is not None:
            return (self.upper - self.lower) / 2.0
        return max(sides) if sides else float("inf")


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """One instrument as registered: identity, place, measurand, unit, tolerance, reference."""

    instrument_id: str
    tenant: str
    site: str
    gateway: str
    measurand: str
    unit: str
    tolerance: Tolerance
    reporting_period_s: float
    reference: ReferenceRelation
    description: str = ""
    decision_rule: DecisionRule | None = None
    """The conformity decision rule set for this instrument or its tenant (None: the default)."""
    interval_policy: StaircasePolicy | None = None
    """The ILAC-G24 staircase set for this instrument or its tenant (None: the default)."""
