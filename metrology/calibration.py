"""Calibration records and the correction valid at a reading's time.

A reading is corrected with the calibration record valid *at its timestamp*, not the newest one
(METROLOGY.md, "Calibration state is time-versioned"); raw values are always kept so that a new
or amended certificate can be applied to history again.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from metrology.errors import CalibrationError
from metrology.timebase import SECONDS_PER_DAY


@dataclass(frozen=True, slots=True)
class Correction:
    """As-left correction of a certificate: ``corrected = gain * indication + offset``."""

    offset: float = 0.0
    gain: float = 1.0

    def apply(self, indication: float) -> float:
        """The best estimate of the measurand for ``indication``."""
        return self.gain * indication + self.offset


@dataclass(frozen=True, slots=True)
class CalibrationRecord:
    """One calibration certificate of one instrument.

    ``expanded_uncertainty`` is U at coverage factor ``coverage_factor`` (k, usually 2), in the
    instrument's unit (JCGM 100 §6). ``interval_days`` sets the due date.
    """

    instrument_id: str
    certificate_id: str
    calibrated_at: float
    correction: Correction
    expanded_uncertainty: float
    coverage_factor: float
    interval_days: float

    def __post_init__(self) -> None:
        if not self.expanded_uncertainty >= 0.0:
            raise CalibrationError(
                f"{self.certificate_id}: expanded uncertainty must be >= 0, "
                f"got {self.expanded_uncertainty}"
            )
        if not self.coverage_factor > 0.0:
            raise CalibrationError(
                f"{self.certificate_id}: coverage factor k must be > 0, got {self.coverage_factor}"
            )
        if not self.interval_days > 0.0:
            raise CalibrationError(
                f"{self.certificate_id}: interval must be > 0 days, got {self.interval_days}"
            )

    @property
    def standard_uncertainty(self) -> float:
        """u = U / k."""
        return self.expanded_uncertainty / self.coverage_factor

    @property
    def due_at(self) -> float:
        """When the next calibration is required (epoch seconds)."""
        return self.calibrated_at + self.interval_days * SECONDS_PER_DAY


class DueState(StrEnum):
    """Where an instrument stands against its calibration due date."""

    IN_DATE = "in_date"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"


def due_state(record: CalibrationRecord, at: float, due_soon_days: float) -> DueState:
    """Overdue after the due date; due soon within ``due_soon_days`` before it."""
    if at > record.due_at:
        return DueState.OVERDUE
    if at > record.due_at - due_soon_days * SECONDS_PER_DAY:
        return DueState.DUE_SOON
    return DueState.IN_DATE


class CalibrationHistory:
    """The calibration records of one instrument, ordered by date, looked up by time."""

    __slots__ = ("_records", "_starts")

    def __init__(self, records: Iterable[CalibrationRecord] = ()) -> None:
        ordered = sorted(records, key=lambda r: r.calibrated_at)
        self._records: tuple[CalibrationRecord, ...] = tuple(ordered)
        self._starts: list[float] = [r.calibrated_at for r in ordered]

    @property
    def records(self) -> tuple[CalibrationRecord, ...]:
        return self._records

    def valid_at(self, ts: float) -> CalibrationRecord | None:
        """The record in force at ``ts``: the latest one calibrated at or before it."""
        i = bisect.bisect_right(self._starts, ts)
        return self._records[i - 1] if i else None

    def correct(self, ts: float, indication: float) -> tuple[float, CalibrationRecord | None]:
        """The corrected value of ``indication`` at ``ts`` and the record used (none: uncorrected)."""
        record = self.valid_at(ts)
        if record is None:
            return indication, None
        return record.correction.apply(indication), record

    def latest(self) -> CalibrationRecord | None:
        return self._records[-1] if self._records else None

    def with_record(self, record: CalibrationRecord) -> CalibrationHistory:
        """A new history with ``record`` added (histories are values; nothing is overwritten)."""
        return CalibrationHistory((*self._records, record))

    def __len__(self) -> int:
        return len(self._records)
