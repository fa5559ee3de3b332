"""What the API answers: storage's records as they are, in the envelopes of the list resources.

The records of :mod:`storage.registry.records` and the domain's values (health snapshots,
status changes, dead letters) are plain frozen dataclasses of JSON values: they are the response
models themselves, so the OpenAPI document describes exactly what storage returns. Times in
answers are epoch seconds, UTC (as in every record and in a snapshot's numbers); values are in
the instrument's registered unit. Only a calibration revision has a model of its own here:
its correction is a gain and offset or a curve of points.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from metrology.assessment import HealthSnapshot, StatusChange
from metrology.calibration import CalibrationHistory, CalibrationRecord, Correction
from metrology.curves import CurveCorrection
from metrology.health import Status
from metrology.wire import DeadLetter
from storage.registry.records import (
    AuditEntry,
    ContractRecord,
    DueEntry,
    GatewayRecord,
    InstrumentRecord,
    SeriesBucket,
    SiteRecord,
    TenantRecord,
    TokenRecord,
)
from storage.schema import NO_DATA

__all__ = [
    "AuditPage",
    "CalibrationList",
    "Certificate",
    "ContractList",
    "DeadLetterPage",
    "DueList",
    "GatewayList",
    "InstrumentHealth",
    "InstrumentList",
    "Probe",
    "Revision",
    "Series",
    "SiteList",
    "StatusHistoryPage",
    "TenantList",
    "TokenList",
    "calibration_list",
    "revision_of",
]

NextLink = Annotated[
    str | None,
    Field(description="the URL of the next page (relative to the server); null on the last page"),
]


class TenantList(BaseModel):
    items: list[TenantRecord]


class SiteList(BaseModel):
    items: list[SiteRecord]


class GatewayList(BaseModel):
    items: list[GatewayRecord]


class InstrumentList(BaseModel):
    items: list[InstrumentRecord]


class ContractList(BaseModel):
    items: list[ContractRecord]


class TokenList(BaseModel):
    """Tokens as listed: never a secret."""

    items: list[TokenRecord]


class DueList(BaseModel):
    """Instruments by calibration due date, soonest first; never calibrated ones first."""

    items: list[DueEntry]


class AuditPage(BaseModel):
    """The audit trail, newest first."""

    items: list[AuditEntry]
    next: NextLink


class StatusHistoryPage(BaseModel):
    """Status changes (the alerts' history), newest first."""

    items: list[StatusChange]
    next: NextLink


class DeadLetterPage(BaseModel):
    """Refused input with its reason, newest first."""

    items: list[DeadLetter]
    next: NextLink


class GainOffset(BaseModel):
    """``corrected = gain * indication + offset``."""

    kind: Literal["gain_offset"] = "gain_offset"
    offset: float
    gain: float


class Curve(BaseModel):
    """A table of (indication, correction) points, interpolated linearly."""

    kind: Literal["curve"] = "curve"
    points: list[tuple[float, float]]


class AmendmentRecord(BaseModel):
    """Who amended a certificate into this revision, when, and why (ISO/IEC 17025 §7.8.8)."""

    revision: int
    amended_at: float
    amended_by: str
    reason: str


class Revision(BaseModel):
    """One revision of a calibration certificate, in the instrument's registered unit."""

    instrument_id: str
    certificate_id: str
    revision: int = Field(description="0 for the certificate as issued, then 1, 2, ...")
    in_force: bool = Field(description="the newest revision of its certificate")
    calibrated_at: float
    correction: GainOffset | Curve = Field(discriminator="kind")
    expanded_uncertainty: float
    coverage_factor: float
    standard_uncertainty: float
    interval_days: float
    due_at: float
    as_found_error: float | None
    amendment: AmendmentRecord | None


class Certificate(BaseModel):
    """A certificate and every revision of it, the issue first; the last is in force."""

    certificate_id: str
    revisions: list[Revision]


class CalibrationList(BaseModel):
    """Every certificate of an instrument, by calibration date, with its revisions."""

    instrument_id: str
    items: list[Certificate]


def revision_of(record: CalibrationRecord, in_force: bool = True) -> Revision:
    correction = record.correction
    if isinstance(correction, CurveCorrection):
        model: GainOffset | Curve = Curve(points=[(x, c) for x, c in correction.points])
    else:
        assert isinstance(correction, Correction)  # the two kinds a certificate states
        model = GainOffset(offset=correction.offset, gain=correction.gain)
    amendment = record.amendment
    return Revision(
        instrument_id=record.instrument_id,
        certificate_id=record.certificate_id,
        revision=record.revision,
        in_force=in_force,
        calibrated_at=record.calibrated_at,
        correction=model,
        expanded_uncertainty=record.expanded_uncertainty,
        coverage_factor=record.coverage_factor,
        standard_uncertainty=record.standard_uncertainty,
        interval_days=record.interval_days,
        due_at=record.due_at,
        as_found_error=record.as_found_error,
        amendment=None
        if amendment is None
        else AmendmentRecord(
            revision=amendment.revision,
            amended_at=amendment.amended_at,
            amended_by=amendment.amended_by,
            reason=amendment.reason,
        ),
    )


def calibration_list(instrument_id: str, history: CalibrationHistory) -> CalibrationList:
    certificates = []
    for current in history.records:
        trail = history.audit_trail(current.certificate_id)
        revisions = [revision_of(r, in_force=r is trail[-1]) for r in trail]
        certificates.append(Certificate(certificate_id=current.certificate_id, revisions=revisions))
    return CalibrationList(instrument_id=instrument_id, items=certificates)


HealthStatus = Literal[
    "OK", "DRIFTING", "AT_RISK", "OUT_OF_TOLERANCE", "CAL_DUE_SOON", "CAL_OVERDUE", "OFFLINE",
    "UNVERIFIED", "NO_DATA",
]  # fmt: skip
assert set(HealthStatus.__args__) == {*(s.value for s in Status), NO_DATA}


class InstrumentHealth(BaseModel):
    """The latest health of one instrument with every number behind it.

    ``NO_DATA``: registered, not heard from yet (no evaluation, no numbers).
    """

    instrument_id: str
    tenant: str
    site: str
    status: HealthStatus
    conditions: list[Status] = Field(description="every condition that holds, most severe first")
    reasons: list[str] = Field(description="why, in words, with the numbers")
    evaluated_at: float | None
    last_reading_at: float | None
    numbers: dict[str, float | str | None] = Field(
        description="residual and its uncertainty, limits, detector statistics, drift rate, "
        "predicted and estimated out-of-tolerance dates, probability of conformity, decision "
        "rule, due date, interval (times in epoch seconds)"
    )

    @classmethod
    def of(cls, snapshot: HealthSnapshot) -> InstrumentHealth:
        return cls(
            instrument_id=snapshot.instrument_id, tenant=snapshot.tenant, site=snapshot.site,
            status=snapshot.status.value, conditions=list(snapshot.conditions),
            reasons=list(snapshot.reasons), evaluated_at=snapshot.evaluated_at,
            last_reading_at=snapshot.last_reading_at, numbers=dict(snapshot.numbers),
        )  # fmt: skip

    @classmethod
    def no_data(cls, instrument: InstrumentRecord) -> InstrumentHealth:
        """A registered instrument not heard from yet."""
        return cls(
            instrument_id=instrument.instrument_id, tenant=instrument.tenant,
            site=instrument.site, status=NO_DATA, conditions=[], reasons=[], evaluated_at=None,
            last_reading_at=None, numbers={},
        )  # fmt: skip


class Series(BaseModel):
    """Readings and residuals of one instrument in ``[from, until)``, downsampled in the
    database to at most ``points`` time buckets (one reading per bucket when there are fewer)."""

    instrument_id: str
    start: float = Field(description="the range's start, epoch seconds (inclusive)")
    end: float = Field(description="the range's end, epoch seconds (exclusive)")
    points: int = Field(description="the most buckets asked for")
    buckets: list[SeriesBucket]


class Probe(BaseModel):
    status: Literal["ok"] = "ok"
