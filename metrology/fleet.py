"""The fleet description: tenants, sites, instruments and their calibration records.

A fleet file (YAML, read at the edges) is validated here into domain values. Shape::

    fleet: Example fleet
    as_of: 2026-11-01T00:00:00Z          # the date the description refers to
    tenants:
      - id: acme
        name: ACME Precision Parts
        kind: manufacturer                # or calibration_provider (with clients: [...])
        decision_rule: guard_band_u       # optional: simple | guard_band_u | risk:0.025
        shared_gateways: false            # optional: true admits an instrument's readings from
                                          # any gateway of its site (redundant gateways)
        interval_policy:                  # optional ILAC-G24 staircase (these are the defaults)
          {lengthen_below: 0.8, lengthen_factor: 1.25, shorten_factor: 0.5,
           min_days: 30, max_days: 1826}
        sites:
          - id: acme-north
            name: North plant
            instruments:
              - id: acme-north-TT-001
                measurand: temperature
                unit: degC
                range: {low: 0, high: 200}
                tolerance: {lower: -0.5, upper: 0.5}     # or {mpe: 0.5}; relative: 0.001
                period_s: 600
                gateway: gw-01
                reference: {kind: check_standard}        # reference_instrument (instrument:),
                                                         # peer_group (group:), none
                decision_rule: simple                    # optional: overrides the tenant's
                interval_policy: {lengthen_factor: 1.5}  # optional: overrides the tenant's
                calibrations:
                  - certificate: CAL-2026-0001
                    date: 2026-01-15T00:00:00Z
                    correction: {offset: 0.02, gain: 1.0001}
                    expanded_uncertainty: 0.06
                    k: 2
                    interval_days: 365
                    as_found_error: 0.12                 # optional: error found before adjustment
                    amendments:                          # optional: never edit a registered
                      - revision: 1                      # certificate, amend it (ISO/IEC 17025
                        at: 2026-02-03T09:00:00Z         # §7.8.8): who, when, why, and the
                        by: j.doe                        # fields that change
                        reason: offset transcribed with the wrong sign
                        correction: {offset: -0.02, gain: 1.0001}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from metrology.audit import Amendment
from metrology.calibration import CalibrationHistory, CalibrationRecord, Correction
from metrology.conformity import DecisionRule
from metrology.errors import CalibrationError, FleetError, UnitError
from metrology.instrument import (
    InstrumentSpec,
    MeasuringRange,
    ReferenceKind,
    ReferenceRelation,
    Tolerance,
)
from metrology.intervals import StaircasePolicy
from metrology.timebase import to_epoch
from metrology.units import check_unit
from metrology.wire import IDENTIFIER_PATTERN

_Id = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
_STRICT = ConfigDict(extra="forbid", frozen=True)
RANGE_LIMIT = 1e15
"""The largest magnitude of a measuring range's limits, in the registered unit. Readings are
refused beyond the range widened by one span (``InstrumentSpec.plausible``), so no accepted value,
residual or sum of squares of the detectors comes near the float limits."""
MEASURAND_PATTERN = r"^[A-Za-z][A-Za-z0-9 _.()/%-]{0,63}$"
"""A measurand's name ("temperature", "relative humidity"): it is a tag of every series, so no
quotes, backslashes, commas, equals signs or control characters."""


class TenantKind(StrEnum):
    MANUFACTURER = "manufacturer"
    CALIBRATION_PROVIDER = "calibration_provider"


class _Range(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    low: Annotated[float, Field(ge=-RANGE_LIMIT, le=RANGE_LIMIT)]
    high: Annotated[float, Field(ge=-RANGE_LIMIT, le=RANGE_LIMIT)]

    @model_validator(mode="after")
    def _ordered(self) -> _Range:
        if not self.low < self.high:
            raise ValueError(f"range low {self.low} must be below high {self.high}")
        return self


class _Tolerance(BaseModel):
    model_config = _STRICT
    lower: float | None = None
    upper: float | None = None
    mpe: Annotated[float, Field(gt=0)] | None = None
    relative: Annotated[float, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _some_limit(self) -> _Tolerance:
        if self.mpe is not None and (self.lower is not None or self.upper is not None):
            raise ValueError("give either mpe or lower/upper, not both")
        lower, upper = self.limits()
        if lower is None and upper is None:
            raise ValueError("a tolerance needs mpe, lower or upper")
        if lower is not None and upper is not None and not lower < upper:
            raise ValueError(f"tolerance lower {lower} must be below upper {upper}")
        return self

    def limits(self) -> tuple[float | None, float | None]:
        if self.mpe is not None:
            return -self.mpe, self.mpe
        return self.lower, self.upper


class _Reference(BaseModel):
    model_config = _STRICT
    kind: ReferenceKind
    group: _Id | None = None
    instrument: _Id | None = None

    @model_validator(mode="after")
    def _complete(self) -> _Reference:
        if self.kind is ReferenceKind.PEER_GROUP and self.group is None:
            raise ValueError("a peer_group reference needs 'group'")
        return self


class _Correction(BaseModel):
    model_config = _STRICT
    offset: float = 0.0
    gain: Annotated[float, Field(gt=0)] = 1.0


class _Amendment(BaseModel):
    """A new revision of a certificate: who, when, why, and the fields that change."""

    model_config = _STRICT
    revision: Annotated[int, Field(ge=1)]
    at: datetime
    by: Annotated[str, Field(min_length=1)]
    reason: Annotated[str, Field(min_length=1)]
    correction: _Correction | None = None
    expanded_uncertainty: Annotated[float, Field(ge=0)] | None = None
    k: Annotated[float, Field(gt=0)] | None = None
    interval_days: Annotated[float, Field(gt=0)] | None = None
    as_found_error: float | None = None


class _Calibration(BaseModel):
    model_config = _STRICT
    certificate: Annotated[str, Field(min_length=1, max_length=128)]
    date: datetime
    correction: _Correction = _Correction()
    expanded_uncertainty: Annotated[float, Field(ge=0)]
    k: Annotated[float, Field(gt=0)] = 2.0
    interval_days: Annotated[float, Field(gt=0)]
    as_found_error: float | None = None
    amendments: list[_Amendment] = []


class _IntervalPolicy(BaseModel):
    """An ILAC-G24 Method 1 staircase; unset keys take :class:`StaircasePolicy`'s defaults."""

    model_config = _STRICT
    lengthen_below: float | None = None
    lengthen_factor: float | None = None
    shorten_factor: float | None = None
    min_days: float | None = None
    max_days: float | None = None
    severe_above: float | None = None
    severe_shorten_factor: float | None = None

    def policy(self) -> StaircasePolicy:
        """The staircase (raises IntervalError, a ValueError, naming an inconsistent value)."""
        return StaircasePolicy(**self.model_dump(exclude_none=True))

    @model_validator(mode="after")
    def _consistent(self) -> _IntervalPolicy:
        self.policy()
        return self


def _check_rule(text: str) -> str:
    DecisionRule.parse(text)  # raises DecisionRuleError (a ValueError) naming what is wrong
    return text


_Rule = Annotated[str, AfterValidator(_check_rule)]
"""A decision rule as text (``simple``, ``guard_band_u``, ``risk:0.025``), validated."""


class _Instrument(BaseModel):
    model_config = _STRICT
    id: _Id
    measurand: Annotated[str, Field(pattern=MEASURAND_PATTERN)]
    unit: Annotated[str, Field(min_length=1)]
    range: _Range
    tolerance: _Tolerance
    period_s: Annotated[float, Field(gt=0)]
    gateway: _Id
    reference: _Reference
    description: str = ""
    decision_rule: _Rule | None = None
    interval_policy: _IntervalPolicy | None = None
    calibrations: list[_Calibration] = []


class _Site(BaseModel):
    model_config = _STRICT
    id: _Id
    name: str = ""
    instruments: list[_Instrument] = []


class _Tenant(BaseModel):
    model_config = _STRICT
    id: _Id
    name: str = ""
    kind: TenantKind = TenantKind.MANUFACTURER
    clients: list[_Id] = []
    decision_rule: _Rule | None = None
    """The conformity decision rule for the tenant's instruments (an instrument may override)."""
    interval_policy: _IntervalPolicy | None = None
    """The calibration-interval staircase for the tenant's instruments (likewise)."""
    shared_gateways: bool = False
    """The tenant's gateways share instruments: a reading is admitted from any gateway of the
    instrument's site (by default only from the gateway it is registered with)."""
    sites: list[_Site] = []


class _Fleet(BaseModel):
    model_config = _STRICT
    fleet: str = "fleet"
    as_of: datetime | None = None
    tenants: Annotated[list[_Tenant], Field(min_length=1)]
    schema_version: Literal[1] = 1


@dataclass(frozen=True, slots=True)
class Tenant:
    tenant_id: str
    name: str
    kind: TenantKind
    clients: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Site:
    tenant: str
    site_id: str
    name: str


@dataclass(frozen=True)
class Fleet:
    """A validated fleet: every instrument with its calibration history."""

    name: str
    as_of: float | None
    tenants: dict[str, Tenant]
    sites: dict[tuple[str, str], Site]
    instruments: dict[str, InstrumentSpec]
    ranges: dict[str, MeasuringRange]
    calibrations: dict[str, CalibrationHistory]

    def peers_of(self, group: str) -> list[str]:
        """Instruments of a peer group, in registry order."""
        return [
            i.instrument_id
            for i in self.instruments.values()
            if i.reference.kind is ReferenceKind.PEER_GROUP and i.reference.peer_group == group
        ]

    def subset(self, instrument_ids: list[str]) -> Fleet:
        """The same fleet limited to ``instrument_ids`` (tenants and sites kept when used)."""
        keep = {i: self.instruments[i] for i in instrument_ids}
        used_sites = {(s.tenant, s.site) for s in keep.values()}
        used_tenants = {t for t, _ in used_sites}
        return Fleet(
            name=self.name,
            as_of=self.as_of,
            tenants={
                k: v
                for k, v in self.tenants.items()
                if k in used_tenants or v.kind is TenantKind.CALIBRATION_PROVIDER
            },
            sites={k: v for k, v in self.sites.items() if k in used_sites},
            instruments=keep,
            ranges={i: self.ranges[i] for i in keep},
            calibrations={i: self.calibrations[i] for i in keep},
        )


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False)[:10]:
        where = ".".join(str(p) for p in error["loc"])
        lines.append(f"  {where}: {error['msg']}")
    more = exc.error_count() - 10
    if more > 0:
        lines.append(f"  ... and {more} more")
    return "\n".join(lines)


def load_fleet(document: Mapping[str, Any]) -> Fleet:
    """Validate a fleet document (as read from YAML); :class:`FleetError` names every problem."""
    try:
        parsed = _Fleet.model_validate(document)
    except ValidationError as exc:
        raise FleetError(f"invalid fleet description:\n{_format_errors(exc)}") from exc
    tenants: dict[str, Tenant] = {}
    sites: dict[tuple[str, str], Site] = {}
    instruments: dict[str, InstrumentSpec] = {}
    ranges: dict[str, MeasuringRange] = {}
    calibrations: dict[str, CalibrationHistory] = {}
    for tenant in parsed.tenants:
        if tenant.id in tenants:
            raise FleetError(f"tenant {tenant.id!r} is declared twice")
        tenants[tenant.id] = Tenant(tenant.id, tenant.name, tenant.kind, tuple(tenant.clients))
        for site in tenant.sites:
            if (tenant.id, site.id) in sites:
                raise FleetError(f"site {tenant.id}/{site.id} is declared twice")
            sites[(tenant.id, site.id)] = Site(tenant.id, site.id, site.name)
            for item in site.instruments:
                where = f"{tenant.id}/{site.id}/{item.id}"
                if item.id in instruments:
                    raise FleetError(
                        f"{where}: instrument id is already used elsewhere in the fleet"
                    )
                try:
                    check_unit(item.unit)
                except UnitError as exc:
                    raise FleetError(f"{where}: {exc}") from exc
                lower, upper = item.tolerance.limits()
                measuring_range = MeasuringRange(item.range.low, item.range.high)
                instruments[item.id] = InstrumentSpec(
                    instrument_id=item.id,
                    tenant=tenant.id,
                    site=site.id,
                    gateway=item.gateway,
                    measurand=item.measurand,
                    unit=item.unit,
                    tolerance=Tolerance(lower, upper, item.tolerance.relative),
                    reporting_period_s=item.period_s,
                    reference=ReferenceRelation(
                        kind=item.reference.kind,
                        peer_group=item.reference.group,
                        reference_instrument=item.reference.instrument,
                    ),
                    description=item.description,
                    decision_rule=_rule(item.decision_rule or tenant.decision_rule),
                    interval_policy=_interval_policy(
                        item.interval_policy or tenant.interval_policy
                    ),
                    measuring_range=measuring_range,
                    shared_gateways=tenant.shared_gateways,
                )
                ranges[item.id] = measuring_range
                calibrations[item.id] = _history(item, where)
    for tenant_id, tenant_value in tenants.items():
        unknown = [c for c in tenant_value.clients if c not in tenants]
        if unknown:
            raise FleetError(f"tenant {tenant_id!r} names unknown client tenants {unknown}")
    group_sizes = Counter(
        spec.reference.peer_group
        for spec in instruments.values()
        if spec.reference.kind is ReferenceKind.PEER_GROUP
    )
    for group, size in group_sizes.items():
        if size < 3:
            raise FleetError(
                f"peer group {group!r} has {size} member(s); a consensus that "
                "excludes the instrument under test needs at least 3"
            )
    as_of = None if parsed.as_of is None else _epoch(parsed.as_of, "as_of")
    return Fleet(parsed.fleet, as_of, tenants, sites, instruments, ranges, calibrations)


def _rule(text: str | None) -> DecisionRule | None:
    return None if text is None else DecisionRule.parse(text)


def _history(item: _Instrument, where: str) -> CalibrationHistory:
    """The instrument's certificates, each with its amendments as later revisions."""
    records = [
        CalibrationRecord(
            instrument_id=item.id,
            certificate_id=cal.certificate,
            calibrated_at=_epoch(cal.date, f"{where} calibration {cal.certificate}"),
            correction=Correction(cal.correction.offset, cal.correction.gain),
            expanded_uncertainty=cal.expanded_uncertainty,
            coverage_factor=cal.k,
            interval_days=cal.interval_days,
            as_found_error=cal.as_found_error,
        )
        for cal in item.calibrations
    ]
    history = CalibrationHistory(records)
    for cal, record in zip(item.calibrations, records, strict=True):
        newest = record
        for change in sorted(cal.amendments, key=lambda a: a.revision):
            what = f"{where} calibration {cal.certificate} amendment {change.revision}"
            newest = replace(
                newest,
                correction=newest.correction
                if change.correction is None
                else Correction(change.correction.offset, change.correction.gain),
                expanded_uncertainty=_or(change.expanded_uncertainty, newest.expanded_uncertainty),
                coverage_factor=_or(change.k, newest.coverage_factor),
                interval_days=_or(change.interval_days, newest.interval_days),
                as_found_error=newest.as_found_error
                if change.as_found_error is None
                else change.as_found_error,
            )
            try:
                history = history.amend(
                    newest,
                    Amendment(
                        cal.certificate, change.revision, _epoch(change.at, what), change.by,
                        change.reason,
                    ),
                )  # fmt: skip
            except CalibrationError as exc:
                raise FleetError(f"{what}: {exc}") from exc
            newest = history.audit_trail(cal.certificate)[-1]
    return history


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _interval_policy(document: _IntervalPolicy | None) -> StaircasePolicy | None:
    return None if document is None else document.policy()


def _epoch(moment: datetime, where: str) -> float:
    try:
        return to_epoch(moment)
    except ValueError as exc:
        raise FleetError(f"{where}: {exc}") from exc
