"""Factories for step tests: one instrument with a calibration history, and readings of it."""

from __future__ import annotations

import numpy as np

from metrology.calibration import CalibrationRecord, Correction
from metrology.instrument import InstrumentSpec, ReferenceKind, ReferenceRelation, Tolerance
from metrology.reading import Reading
from metrology.timebase import SECONDS_PER_DAY

CALIBRATED_AT = 1_767_225_600.0  # 2026-01-01T00:00:00Z
HOUR = 3_600.0
U_CAL = 0.05  # expanded, k = 2: u = 0.025 degC
MPE = 0.2  # degC: U = MPE / 4


def make_spec(
    kind: ReferenceKind = ReferenceKind.REFERENCE_INSTRUMENT, **changes: object
) -> InstrumentSpec:
    values: dict[str, object] = dict(
        instrument_id="acme-north-TT-001",
        tenant="acme",
        site="north",
        gateway="gw-01",
        measurand="temperature",
        unit="degC",
        tolerance=Tolerance(-MPE, MPE),
        reporting_period_s=HOUR,
        reference=ReferenceRelation(kind),
    )
    values.update(changes)
    return InstrumentSpec(**values)  # type: ignore[arg-type]


def make_record(
    certificate: str = "CAL-1",
    at: float = CALIBRATED_AT,
    offset: float = 0.3,
    gain: float = 1.01,
    interval_days: float = 365.0,
) -> CalibrationRecord:
    return CalibrationRecord(
        "acme-north-TT-001", certificate, at, Correction(offset, gain), U_CAL, 2.0, interval_days
    )


def indication_for(true_value: float, error: float, record: CalibrationRecord) -> float:
    """What the instrument shows when its corrected value should be ``true_value + error``."""
    c = record.correction
    return (true_value + error - c.offset) / c.gain


def readings_with_error(
    errors: np.ndarray,
    record: CalibrationRecord,
    start: float = CALIBRATED_AT + HOUR,
    period: float = HOUR,
    true_value: float = 50.0,
    u_ref: float = 0.006,
) -> list[Reading]:
    return [
        Reading(
            "acme",
            "north",
            "gw-01",
            "acme-north-TT-001",
            start + i * period,
            indication_for(true_value, float(e), record),
            "degC",
            i + 1,
            true_value,
            u_ref,
        )
        for i, e in enumerate(errors)
    ]


def days(n: float) -> float:
    return n * SECONDS_PER_DAY
