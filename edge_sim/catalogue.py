"""Kinds of line instruments the fleet generator draws from, with realistic ranges and MPEs.

Each :class:`InstrumentModel` is a type of instrument as a catalogue lists it: measurand, unit
(pint spelling), measuring range and maximum permissible error. The MPE figures follow the usual
classes of each family:

- temperature: Pt100 class A (IEC 60751: +/-(0.15 + 0.002 |t|) degC), class B
  (+/-(0.3 + 0.005 |t|) degC), thermocouple type K class 1 (+/-1.5 degC);
- pressure: transmitters of accuracy class 0.1 % and 0.25 % of span;
- force and mass: load cells and industrial scales, about 0.03-0.05 % of capacity;
- flow: electromagnetic meters, +/-(0.5 % of reading + a small zero error);
- electrical: process calibrator inputs (DC voltage, 4-20 mA loop current, resistance).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Family(StrEnum):
    """Measurand family; the value is the two-letter tag used in instrument identifiers."""

    TEMPERATURE = "TT"
    PRESSURE = "PT"
    FLOW = "FT"
    FORCE_MASS = "WT"
    ELECTRICAL = "ET"


@dataclass(frozen=True, slots=True)
class InstrumentModel:
    """A type of instrument: what it measures, in which unit, over which range, how well."""

    family: Family
    measurand: str
    unit: str
    low: float
    high: float
    mpe: float
    """Absolute part of the maximum permissible error, in ``unit``."""
    relative: float
    """Part of the MPE proportional to the reading (fraction of |reading|)."""
    description: str

    def mpe_at(self, value: float) -> float:
        """The half-width of the tolerance at ``value``."""
        return self.mpe + self.relative * abs(value)


CATALOGUE: dict[Family, tuple[InstrumentModel, ...]] = {
    Family.TEMPERATURE: (
        InstrumentModel(
            Family.TEMPERATURE,
            "temperature",
            "degC",
            -50.0,
            250.0,
            0.15,
            0.002,
            "Pt100 class A resistance thermometer",
        ),
        InstrumentModel(
            Family.TEMPERATURE,
            "temperature",
            "degC",
            -40.0,
            150.0,
            0.3,
            0.005,
            "Pt100 class B resistance thermometer",
        ),
        InstrumentModel(
            Family.TEMPERATURE,
            "temperature",
            "degC",
            0.0,
            800.0,
            1.5,
            0.0,
            "type K thermocouple, class 1",
        ),
    ),
    Family.PRESSURE: (
        InstrumentModel(
            Family.PRESSURE,
            "pressure",
            "kPa",
            0.0,
            1000.0,
            1.0,
            0.0,
            "pressure transmitter, class 0.1 % of span",
        ),
        InstrumentModel(
            Family.PRESSURE,
            "pressure",
            "kPa",
            0.0,
            250.0,
            0.625,
            0.0,
            "low-range pressure transmitter, class 0.25 % of span",
        ),
        InstrumentModel(
            Family.PRESSURE,
            "pressure",
            "bar",
            0.0,
            16.0,
            0.016,
            0.0,
            "process pressure transmitter, class 0.1 % of span",
        ),
    ),
    Family.FLOW: (
        InstrumentModel(
            Family.FLOW, "flow", "L/min", 0.0, 200.0, 0.2, 0.005, "electromagnetic flowmeter DN25"
        ),
        InstrumentModel(
            Family.FLOW, "flow", "m**3/h", 0.0, 60.0, 0.05, 0.005, "electromagnetic flowmeter DN80"
        ),
    ),
    Family.FORCE_MASS: (
        InstrumentModel(
            Family.FORCE_MASS,
            "force",
            "N",
            0.0,
            5000.0,
            2.5,
            0.0,
            "tension/compression load cell, 0.05 % of capacity",
        ),
        InstrumentModel(
            Family.FORCE_MASS, "mass", "kg", 0.0, 60.0, 0.02, 0.0, "bench scale, 0.03 % of capacity"
        ),
        InstrumentModel(
            Family.FORCE_MASS,
            "mass",
            "kg",
            0.0,
            1500.0,
            0.5,
            0.0,
            "platform scale, 0.03 % of capacity",
        ),
    ),
    Family.ELECTRICAL: (
        InstrumentModel(
            Family.ELECTRICAL,
            "voltage",
            "V",
            0.0,
            10.0,
            0.005,
            0.0,
            "DC voltage input, 0.05 % of span",
        ),
        InstrumentModel(
            Family.ELECTRICAL,
            "current",
            "mA",
            4.0,
            20.0,
            0.016,
            0.0,
            "4-20 mA loop input, 0.1 % of span",
        ),
        InstrumentModel(
            Family.ELECTRICAL,
            "resistance",
            "ohm",
            0.0,
            400.0,
            0.1,
            0.0,
            "resistance input, 0.025 % of span",
        ),
    ),
}

PEER_FAMILIES: tuple[Family, ...] = (Family.TEMPERATURE, Family.PRESSURE, Family.FLOW)
"""Families whose instruments are commonly installed redundantly at one measuring point."""

REPORTING_PERIODS_S: tuple[float, ...] = (300.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0)
"""Reporting periods; each divides a day, so readings align to the same clock every day."""
