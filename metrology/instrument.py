"""What the registry knows about an instrument: its measurand, unit, range, tolerance, reference."""

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


PLAUSIBLE_MARGIN_SPANS = 1.0
"""How far beyond its measuring range a value is still taken as an indication, in spans."""


@dataclass(frozen=True, slots=True)
class MeasuringRange:
    """The registered measuring range, in the instrument's registered unit."""

    low: float
    high: float

    @property
    def span(self) -> float:
        return self.high - self.low

    @property
    def plausible(self) -> tuple[float, float]:
        """The values an indication (or a reference value) of the instrument may take.

        The measuring range widened by :data:`PLAUSIBLE_MARGIN_SPANS` spans on each side
        (0..16 bar: -16..32 bar). Beyond it a value is no indication of this instrument (a
        wrong unit, a broken channel, a hostile gateway): ingest refuses it rather than store
        it, so that statistics and drift fits never see it. Transmitters saturate and signal
        faults (NAMUR NE 43: 3.6 mA and 21 mA on a 4-20 mA loop) well inside this band.
        """
        margin = PLAUSIBLE_MARGIN_SPANS * self.span
        return self.low - margin, self.high + margin


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
    measuring_range: MeasuringRange | None = None
    """The registered measuring range (None: unknown; ingest then checks only finiteness)."""
    shared_gateways: bool = False
    """Readings are admitted from any gateway of the instrument's site, not only ``gateway``
    (the tenant's ``shared_gateways`` option, for redundant gateways sharing instruments)."""
