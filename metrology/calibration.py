"""Calibration records and the correction valid at a reading's time.

A reading is corrected with the calibration record valid *at its timestamp*, not the newest one
(METROLOGY.md, "Calibration state is time-versioned"); raw values are always kept so that a new
or amended certificate can be applied to history again.

A record's correction is any :class:`~metrology.curves.CorrectionModel`: a gain and offset
(:class:`Correction`, the usual case) or a table of certificate points
(:class:`~metrology.curves.CurveCorrection`). A certificate is never overwritten: an amendment
is a new revision of the same certificate id carrying an :class:`~metrology.audit.Amendment`
(ISO/IEC 17025:2017 §7.5.2, §7.8.8); lookups by time use the newest revision of each
certificate, and :meth:`CalibrationHistory.audit_trail` keeps every one.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from itertools import pairwise

from metrology.audit import Amendment
from metrology.curves import CorrectionModel
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
    instrument's unit (JCGM 100 §6). ``interval_days`` sets the due date. ``correction`` is a
    :class:`Correction` or any other :class:`~metrology.curves.CorrectionModel` (a curve).
    ``amendment`` is ``None`` for the original issue of a certificate (revision 0), else who
    amended it into which revision, when and why (ISO/IEC 17025:2017 §7.8.8).
    """

    instrument_id: str
    certificate_id: str
    calibrated_at: float
    correction: CorrectionModel
    expanded_uncertainty: float
    coverage_factor: float
    interval_days: float
    amendment: Amendment | None = None
    as_found_error: float | None = None
    """Error of indication found at this calibration before any adjustment (as-found), in the
    instrument's unit, when the certificate states it: the input of the ILAC-G24 staircase."""
    standard_uncertainty: float = field(init=False)
    """u = U / k."""
    due_at: float = field(init=False)
    """When the next calibration is required (epoch seconds)."""

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
        if self.amendment is not None and self.amendment.certificate_id != self.certificate_id:
            raise CalibrationError(
                f"{self.certificate_id}: the amendment is for certificate "
                f"{self.amendment.certificate_id}"
            )
        if not callable(getattr(self.correction, "apply", None)):
            raise CalibrationError(
                f"{self.certificate_id}: correction {self.correction!r} has no apply()"
            )
        # Derived once: both are read for every reading.
        u = self.expanded_uncertainty / self.coverage_factor
        object.__setattr__(self, "standard_uncertainty", u)
        due_at = self.calibrated_at + self.interval_days * SECONDS_PER_DAY
        object.__setattr__(self, "due_at", due_at)

    @property
    def revision(self) -> int:
        """0 for the original issue of the certificate, else the amendment's revision."""
        return 0 if self.amendment is None else self.amendment.revision


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
    """The calibration records of one instrument, ordered by date, looked up by time.

    Every revision of every certificate is kept; the records *in force* are the newest revision
    of each certificate, and only those answer :meth:`valid_at` and :meth:`correct`
    (ISO/IEC 17025:2017 §7.8.8: an amendment supersedes, it does not erase). Revisions of one
    certificate must have distinct revision numbers, the same instrument, and amendment times
    that do not go back in time; otherwise :class:`CalibrationError`.
    """

    __slots__ = ("_records", "_starts", "_trails")

    def __init__(self, records: Iterable[CalibrationRecord] = ()) -> None:
        grouped: dict[str, list[CalibrationRecord]] = {}
        for record in records:
            grouped.setdefault(record.certificate_id, []).append(record)
        trails: dict[str, tuple[CalibrationRecord, ...]] = {}
        for certificate_id, revisions in grouped.items():
            revisions.sort(key=lambda r: r.revision)
            for earlier, later in pairwise(revisions):
                _check_supersedes(earlier, later)
            trails[certificate_id] = tuple(revisions)
        # Stable sort over certificates in first-seen order: without amendments this is exactly
        # the order of the records given, sorted by date.
        ordered = sorted((trail[-1] for trail in trails.values()), key=lambda r: r.calibrated_at)
        self._records: tuple[CalibrationRecord, ...] = tuple(ordered)
        self._starts: list[float] = [r.calibrated_at for r in ordered]
        self._trails: dict[str, tuple[CalibrationRecord, ...]] = trails

    @property
    def records(self) -> tuple[CalibrationRecord, ...]:
        """The records in force (newest revision of each certificate), ordered by date."""
        return self._records

    @property
    def all_revisions(self) -> tuple[CalibrationRecord, ...]:
        """Every revision of every certificate, superseded ones included (for persistence)."""
        return tuple(r for trail in self._trails.values() for r in trail)

    def valid_at(self, ts: float) -> CalibrationRecord | None:
        """The record in force at ``ts``: the latest one calibrated at or before it."""
        i = bisect.bisect_right(self._starts, ts)
        return self._records[i - 1] if i else None

    def correct(self, ts: float, indication: float) -> tuple[float, CalibrationRecord | None]:
        """The corrected value of ``indication`` at ``ts`` and the record used.

        No record in force at ``ts``: the indication itself and ``None`` (uncorrected).
        """
        record = self.valid_at(ts)
        if record is None:
            return indication, None
        return record.correction.apply(indication), record

    def latest(self) -> CalibrationRecord | None:
        return self._records[-1] if self._records else None

    def with_record(self, record: CalibrationRecord) -> CalibrationHistory:
        """A new history with ``record`` added (histories are values; nothing is overwritten).

        A record whose certificate and revision are already present raises
        :class:`CalibrationError`: to change a certificate, :meth:`amend` it.
        """
        return CalibrationHistory((*self.all_revisions, record))

    def audit_trail(self, certificate_id: str) -> tuple[CalibrationRecord, ...]:
        """Every revision of ``certificate_id``, original first; each carries its amendment.

        ISO/IEC 17025:2017 §7.5.2: the original, and for each amendment who, when and why
        (``record.amendment``). Raises :class:`CalibrationError` for an unknown certificate.
        """
        trail = self._trails.get(certificate_id)
        if trail is None:
            raise CalibrationError(f"unknown certificate {certificate_id!r}")
        return trail

    def amend(self, record: CalibrationRecord, amendment: Amendment) -> CalibrationHistory:
        """A new history in which ``record`` is revision ``amendment.revision`` of its certificate.

        The earlier revisions stay in the audit trail; lookups by time use the new one from now
        on (ISO/IEC 17025:2017 §7.8.8). ``record`` is the content of the new revision (for
        example ``dataclasses.replace`` of the newest one); whatever amendment it carried is
        replaced by ``amendment``. Raises :class:`CalibrationError` when the certificate is
        unknown, the revision does not increase, the record is for another certificate or
        instrument, or the amendment is dated before the previous one.
        """
        if record.certificate_id != amendment.certificate_id:
            raise CalibrationError(
                f"record {record.certificate_id} cannot take an amendment of "
                f"{amendment.certificate_id}"
            )
        trail = self._trails.get(record.certificate_id)
        if trail is None:
            raise CalibrationError(f"cannot amend unknown certificate {record.certificate_id!r}")
        amended = record if record.amendment == amendment else replace(record, amendment=amendment)
        _check_supersedes(trail[-1], amended)
        return CalibrationHistory((*self.all_revisions, amended))

    def __len__(self) -> int:
        """The number of certificates (each counted once, whatever its revisions)."""
        return len(self._records)


def _check_supersedes(earlier: CalibrationRecord, later: CalibrationRecord) -> None:
    """Raise unless ``later`` may supersede ``earlier`` (revisions of the same certificate)."""
    certificate = earlier.certificate_id
    if not later.revision > earlier.revision:
        raise CalibrationError(
            f"{certificate}: revision {later.revision} does not supersede revision "
            f"{earlier.revision} (revisions must increase)"
        )
    if later.instrument_id != earlier.instrument_id:
        raise CalibrationError(
            f"{certificate}: revision {later.revision} is for instrument {later.instrument_id}, "
            f"the certificate is for {earlier.instrument_id}"
        )
    if (
        earlier.amendment is not None
        and later.amendment is not None
        and later.amendment.amended_at < earlier.amendment.amended_at
    ):
        raise CalibrationError(
            f"{certificate}: revision {later.revision} is dated before revision {earlier.revision}"
        )
