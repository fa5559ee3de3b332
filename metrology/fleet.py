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
                    correction: {offset: 0.02, gain: 1.0001}     # or a curve of certificate
                                                                 # points: [{indication: 0,
                                                                 # correction: 0.05}, ...]
                    unit: degC                           # optional: the certificate's unit
                                                         # (default: the instrument's)
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
            gateways:                             # optional: gateways the instruments name are
              - {id: gw-01, description: hall 3}  # registered anyway (with no description)
      - id: calprov
        kind: calibration_provider
        clients:                                  # contracts: an id is a read contract with
          - acme                                  # no period; a mapping gives scope and period
          - {client: globex, scope: calibration, valid_from: 2026-01-01T00:00:00Z,
             valid_until: 2027-01-01T00:00:00Z}

The per-entity models (:class:`TenantDocument`, :class:`SiteDocument`,
:class:`GatewayDocument`, :class:`InstrumentDocument`, :class:`CalibrationDocument`,
:class:`CalibrationAmendmentDocument`, :class:`ClientDocument`, ...) are public: the registry's
operations (``storage.registry``), the command line and the HTTP API validate their inputs with
the same models, so an entity means the same wherever it comes from. Each ``Fleet...Document``
extends its entity with what the file nests inside it (sites, instruments, calibrations,
amendments). Every model refuses unknown keys, and every message names the field.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from metrology.audit import Amendment
from metrology.calibration import CalibrationHistory, CalibrationRecord, Correction
from metrology.conformity import DecisionRule
from metrology.curves import CurveCorrection
from metrology.errors import CalibrationError, FleetError, UnitError
from metrology.instrument import (
    InstrumentSpec,
    MeasuringRange,
    ReferenceKind,
    ReferenceRelation,
    Tolerance,
)
from metrology.intervals import StaircasePolicy
from metrology.tenancy import Contract, ContractScope
from metrology.timebase import to_epoch
from metrology.units import LinearConversion, UnitRefusal, check_unit, find_conversion
from metrology.wire import IDENTIFIER_PATTERN

__all__ = [
    "MEASURAND_PATTERN",
    "RANGE_LIMIT",
    "AmendmentDocument",
    "CalibrationAmendmentDocument",
    "CalibrationDocument",
    "ClientDocument",
    "CorrectionDocument",
    "CurvePointDocument",
    "Fleet",
    "FleetCalibrationDocument",
    "FleetDocument",
    "FleetInstrumentDocument",
    "FleetSiteDocument",
    "FleetTenantDocument",
    "Gateway",
    "GatewayDocument",
    "Identifier",
    "InstrumentDocument",
    "IntervalPolicyDocument",
    "RangeDocument",
    "ReferenceDocument",
    "Rule",
    "Site",
    "SiteDocument",
    "Tenant",
    "TenantDocument",
    "TenantKind",
    "Text",
    "ToleranceDocument",
    "Unit",
    "describe_errors",
    "load_fleet",
]

Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
"""A tenant, site, gateway or instrument id: it travels in MQTT topics and series tags."""
_STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
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


def _known_unit(text: str) -> str:
    try:
        check_unit(text)
    except UnitError as exc:
        raise ValueError(str(exc)) from exc
    return text


Unit = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_known_unit)]
"""A unit pint knows (``degC``, ``bar``, ``%``)."""


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank")
    return text


Text = Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_not_blank)]
"""A required free text: who, why."""


class RangeDocument(BaseModel):
    model_config = _STRICT
    low: Annotated[float, Field(ge=-RANGE_LIMIT, le=RANGE_LIMIT)]
    high: Annotated[float, Field(ge=-RANGE_LIMIT, le=RANGE_LIMIT)]

    @model_validator(mode="after")
    def _ordered(self) -> RangeDocument:
        if not self.low < self.high:
            raise ValueError(f"range low {self.low} must be below high {self.high}")
        return self

    def measuring_range(self) -> MeasuringRange:
        return MeasuringRange(self.low, self.high)


class ToleranceDocument(BaseModel):
    model_config = _STRICT
    lower: float | None = None
    upper: float | None = None
    mpe: Annotated[float, Field(gt=0)] | None = None
    relative: Annotated[float, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _some_limit(self) -> ToleranceDocument:
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

    def tolerance(self) -> Tolerance:
        lower, upper = self.limits()
        return Tolerance(lower, upper, self.relative)


class ReferenceDocument(BaseModel):
    model_config = _STRICT
    kind: ReferenceKind
    group: Identifier | None = None
    instrument: Identifier | None = None

    @model_validator(mode="after")
    def _complete(self) -> ReferenceDocument:
        if self.kind is ReferenceKind.PEER_GROUP and self.group is None:
            raise ValueError("a peer_group reference needs 'group'")
        return self

    def relation(self) -> ReferenceRelation:
        return ReferenceRelation(self.kind, self.group, self.instrument)


class CorrectionDocument(BaseModel):
    """``corrected = gain * indication + offset``."""

    model_config = _STRICT
    offset: float = 0.0
    gain: Annotated[float, Field(gt=0)] = 1.0


class CurvePointDocument(BaseModel):
    """One row of a certificate's table: the correction to add at an indication."""

    model_config = _STRICT
    indication: float
    correction: float


class IntervalPolicyDocument(BaseModel):
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
    def _consistent(self) -> IntervalPolicyDocument:
        self.policy()
        return self


def _check_rule(text: str) -> str:
    DecisionRule.parse(text)  # raises DecisionRuleError (a ValueError) naming what is wrong
    return text


Rule = Annotated[str, AfterValidator(_check_rule)]
"""A decision rule as text (``simple``, ``guard_band_u``, ``risk:0.025``), validated."""

_Points = Annotated[list[CurvePointDocument], Field(min_length=2, max_length=1000)]


def _curve(points: list[CurvePointDocument]) -> CurveCorrection:
    """The curve of certificate points, given in increasing or decreasing indications."""
    pairs = [(p.indication, p.correction) for p in points]
    if len(pairs) >= 2 and pairs[1][0] < pairs[0][0]:
        pairs.reverse()
    try:
        return CurveCorrection(tuple(pairs))
    except CalibrationError as exc:
        raise ValueError(f"indications must be strictly monotonic: {exc}") from exc


class _CertificateContent(BaseModel):
    """What a certificate states; every field optional here (amendments change some)."""

    model_config = _STRICT
    unit: Unit | None = None
    """The unit the certificate's numbers are in (None: the instrument's registered unit);
    they are converted to the registered unit when recorded."""
    correction: CorrectionDocument | None = None
    points: _Points | None = None
    """A correction curve: the certificate's table of corrections at calibration points,
    interpolated linearly (:class:`~metrology.curves.CurveCorrection`)."""
    expanded_uncertainty: Annotated[float, Field(ge=0)] | None = None
    k: Annotated[float, Field(gt=0)] | None = None
    interval_days: Annotated[float, Field(gt=0)] | None = None
    as_found_error: float | None = None

    @field_validator("points")
    @classmethod
    def _monotonic(cls, points: list[CurvePointDocument] | None) -> list[CurvePointDocument] | None:
        if points is not None:
            _curve(points)
        return points

    @model_validator(mode="after")
    def _one_correction(self) -> _CertificateContent:
        if self.correction is not None and self.points is not None:
            raise ValueError("give either correction (gain and offset) or points (a curve)")
        return self

    def _correction_model(self) -> Correction | CurveCorrection | None:
        if self.points is not None:
            return _curve(self.points)
        if self.correction is not None:
            return Correction(self.correction.offset, self.correction.gain)
        return None


def _conversion(from_unit: str | None, to_unit: str) -> LinearConversion | None:
    """The map from the certificate's unit to the registered one (None: the same unit)."""
    if from_unit is None or from_unit == to_unit:
        return None
    found = find_conversion(from_unit, to_unit)
    if isinstance(found, UnitRefusal):
        raise UnitError(f"the certificate's unit: {found.detail}")
    return found


def _in_unit(
    conversion: LinearConversion | None, correction: Correction | CurveCorrection
) -> Correction | CurveCorrection:
    """A correction stated in another unit, as the same correction in the registered unit.

    With ``y = s * x + o`` from the certificate's unit to the registered one: a gain and offset
    ``g * x + b`` become ``g * y + (s * b + o * (1 - g))`` (the gain is a ratio); a curve's
    indications map like values and its corrections, which are differences, scale by ``s``.
    """
    if conversion is None:
        return correction
    s, o = conversion.scale, conversion.offset
    if isinstance(correction, Correction):
        return Correction(s * correction.offset + o * (1.0 - correction.gain), correction.gain)
    return CurveCorrection(tuple(sorted((conversion(x), s * c) for x, c in correction.points)))


def _scaled(conversion: LinearConversion | None, difference: float | None) -> float | None:
    """An uncertainty or an error (a difference of values) in the registered unit."""
    if conversion is None or difference is None:
        return difference
    return conversion.scale * difference


class CalibrationDocument(_CertificateContent):
    """A calibration certificate: its id, date, correction, uncertainty and interval.

    ``record(instrument_id, unit)`` is the :class:`CalibrationRecord` in the instrument's
    registered unit (converted when the certificate states another ``unit``).
    """

    certificate: Annotated[str, Field(min_length=1, max_length=128)]
    date: AwareDatetime
    expanded_uncertainty: Annotated[float, Field(ge=0)]
    k: Annotated[float, Field(gt=0)] = 2.0
    interval_days: Annotated[float, Field(gt=0)]

    def record(self, instrument_id: str, unit: str) -> CalibrationRecord:
        """Raises :class:`UnitError` when the certificate's unit does not convert to ``unit``."""
        conversion = _conversion(self.unit, unit)
        correction = self._correction_model() or Correction()
        return CalibrationRecord(
            instrument_id=instrument_id,
            certificate_id=self.certificate,
            calibrated_at=to_epoch(self.date),
            correction=_in_unit(conversion, correction),
            expanded_uncertainty=abs(_scaled(conversion, self.expanded_uncertainty) or 0.0),
            coverage_factor=self.k,
            interval_days=self.interval_days,
            as_found_error=_scaled(conversion, self.as_found_error),
        )


class CalibrationAmendmentDocument(_CertificateContent):
    """What an amendment of a certificate changes, and why (ISO/IEC 17025:2017 §7.8.8).

    Fields left out keep the previous revision's value. ``date`` corrects the calibration date.
    """

    reason: Text
    date: AwareDatetime | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> CalibrationAmendmentDocument:
        if not self.changed_fields():
            raise ValueError(
                "an amendment changes at least one of date, correction, points, "
                "expanded_uncertainty, k, interval_days, as_found_error"
            )
        return self

    def changed_fields(self) -> list[str]:
        content = ("date", "correction", "points", "expanded_uncertainty", "k", "interval_days",
                   "as_found_error")  # fmt: skip
        return [name for name in content if getattr(self, name) is not None]

    def revised(self, previous: CalibrationRecord, unit: str) -> CalibrationRecord:
        """The content of the new revision: ``previous`` with this amendment's changes, in
        ``unit`` (the amendment attached to it is the caller's: who, when, which revision)."""
        conversion = _conversion(self.unit, unit)
        correction = self._correction_model()
        uncertainty = _scaled(conversion, self.expanded_uncertainty)
        return replace(
            previous,
            calibrated_at=previous.calibrated_at if self.date is None else to_epoch(self.date),
            correction=previous.correction
            if correction is None
            else _in_unit(conversion, correction),
            expanded_uncertainty=previous.expanded_uncertainty
            if uncertainty is None
            else abs(uncertainty),
            coverage_factor=previous.coverage_factor if self.k is None else self.k,
            interval_days=previous.interval_days
            if self.interval_days is None
            else self.interval_days,
            as_found_error=previous.as_found_error
            if self.as_found_error is None
            else _scaled(conversion, self.as_found_error),
        )


class AmendmentDocument(CalibrationAmendmentDocument):
    """An amendment written in a fleet file: which revision, when and by whom, as well."""

    revision: Annotated[int, Field(ge=1)]
    at: AwareDatetime
    by: Text


class FleetCalibrationDocument(CalibrationDocument):
    amendments: list[AmendmentDocument] = []


class InstrumentDocument(BaseModel):
    """One instrument as registered (its certificates are recorded separately)."""

    model_config = _STRICT
    id: Identifier
    measurand: Annotated[str, Field(pattern=MEASURAND_PATTERN)]
    unit: Unit
    range: RangeDocument
    tolerance: ToleranceDocument
    period_s: Annotated[float, Field(gt=0, le=1e9)]
    gateway: Identifier
    reference: ReferenceDocument
    description: Annotated[str, Field(max_length=1000)] = ""
    decision_rule: Rule | None = None
    interval_policy: IntervalPolicyDocument | None = None

    def spec(
        self,
        tenant: str,
        site: str,
        *,
        default_rule: str | None = None,
        default_policy: IntervalPolicyDocument | None = None,
        shared_gateways: bool = False,
    ) -> InstrumentSpec:
        """The registered instrument; the tenant's rule and policy apply where it sets none."""
        policy = self.interval_policy or default_policy
        return InstrumentSpec(
            instrument_id=self.id,
            tenant=tenant,
            site=site,
            gateway=self.gateway,
            measurand=self.measurand,
            unit=self.unit,
            tolerance=self.tolerance.tolerance(),
            reporting_period_s=self.period_s,
            reference=self.reference.relation(),
            description=self.description,
            decision_rule=_rule(self.decision_rule or default_rule),
            interval_policy=None if policy is None else policy.policy(),
            measuring_range=self.range.measuring_range(),
            shared_gateways=shared_gateways,
        )


class FleetInstrumentDocument(InstrumentDocument):
    calibrations: list[FleetCalibrationDocument] = []


class GatewayDocument(BaseModel):
    model_config = _STRICT
    id: Identifier
    description: Annotated[str, Field(max_length=1000)] = ""


class SiteDocument(BaseModel):
    model_config = _STRICT
    id: Identifier
    name: Annotated[str, Field(max_length=200)] = ""


class FleetSiteDocument(SiteDocument):
    gateways: list[GatewayDocument] = []
    instruments: list[FleetInstrumentDocument] = []


class TenantDocument(BaseModel):
    model_config = _STRICT
    id: Identifier
    name: Annotated[str, Field(max_length=200)] = ""
    kind: TenantKind = TenantKind.MANUFACTURER
    decision_rule: Rule | None = None
    """The conformity decision rule for the tenant's instruments (an instrument may override)."""
    interval_policy: IntervalPolicyDocument | None = None
    """The calibration-interval staircase for the tenant's instruments (likewise)."""
    shared_gateways: bool = False
    """The tenant's gateways share instruments: a reading is admitted from any gateway of the
    instrument's site (by default only from the gateway it is registered with)."""

    def tenant(self, clients: tuple[str, ...] = ()) -> Tenant:
        return Tenant(
            self.id,
            self.name,
            self.kind,
            clients,
            decision_rule=_rule(self.decision_rule),
            interval_policy=None if self.interval_policy is None else self.interval_policy.policy(),
            shared_gateways=self.shared_gateways,
        )


class ClientDocument(BaseModel):
    """A provider's client under a contract: what it grants, from when, until when."""

    model_config = _STRICT
    client: Identifier
    scope: ContractScope = ContractScope.READ
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ClientDocument:
        if (
            self.valid_from is not None
            and self.valid_until is not None
            and not self.valid_from < self.valid_until
        ):
            raise ValueError("valid_until must be after valid_from")
        return self

    def contract(self, provider: str) -> Contract:
        return Contract(
            provider,
            self.client,
            self.scope,
            None if self.valid_from is None else to_epoch(self.valid_from),
            None if self.valid_until is None else to_epoch(self.valid_until),
        )


class FleetTenantDocument(TenantDocument):
    clients: list[Identifier | ClientDocument] = []
    """Client tenants (of a calibration provider): an id is a ``read`` contract with no end."""
    sites: list[FleetSiteDocument] = []


class FleetDocument(BaseModel):
    model_config = _STRICT
    fleet: str = "fleet"
    as_of: AwareDatetime | None = None
    tenants: Annotated[list[FleetTenantDocument], Field(min_length=1)]
    schema_version: Literal[1] = 1


@dataclass(frozen=True, slots=True)
class Tenant:
    tenant_id: str
    name: str
    kind: TenantKind
    clients: tuple[str, ...] = ()
    decision_rule: DecisionRule | None = None
    """The tenant's default decision rule (its instruments carry the one that applies)."""
    interval_policy: StaircasePolicy | None = None
    """The tenant's default interval staircase (likewise)."""
    shared_gateways: bool = False


@dataclass(frozen=True, slots=True)
class Site:
    tenant: str
    site_id: str
    name: str


@dataclass(frozen=True, slots=True)
class Gateway:
    tenant: str
    site: str
    gateway_id: str
    description: str = ""


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
    gateways: dict[tuple[str, str, str], Gateway] = field(default_factory=dict)
    """Every gateway: those the file declares and those its instruments name."""
    contracts: tuple[Contract, ...] = ()
    """The providers' contracts with their clients."""

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
        tenants = {
            k: v
            for k, v in self.tenants.items()
            if k in used_tenants or v.kind is TenantKind.CALIBRATION_PROVIDER
        }
        return Fleet(
            name=self.name,
            as_of=self.as_of,
            tenants=tenants,
            sites={k: v for k, v in self.sites.items() if k in used_sites},
            instruments=keep,
            ranges={i: self.ranges[i] for i in keep},
            calibrations={i: self.calibrations[i] for i in keep},
            gateways={k: v for k, v in self.gateways.items() if k[:2] in used_sites},
            contracts=tuple(c for c in self.contracts if c.provider in tenants),
        )


def describe_errors(exc: ValidationError, limit: int = 10) -> str:
    """Pydantic's errors as ``  field.path: message`` lines (the first ``limit``)."""
    lines = []
    for error in exc.errors(include_url=False)[:limit]:
        where = ".".join(str(p) for p in error["loc"])
        lines.append(f"  {where}: {error['msg']}")
    more = exc.error_count() - limit
    if more > 0:
        lines.append(f"  ... and {more} more")
    return "\n".join(lines)


def load_fleet(document: Mapping[str, Any]) -> Fleet:
    """Validate a fleet document (as read from YAML); :class:`FleetError` names every problem."""
    try:
        parsed = FleetDocument.model_validate(document)
    except ValidationError as exc:
        raise FleetError(f"invalid fleet description:\n{describe_errors(exc)}") from exc
    tenants: dict[str, Tenant] = {}
    sites: dict[tuple[str, str], Site] = {}
    gateways: dict[tuple[str, str, str], Gateway] = {}
    instruments: dict[str, InstrumentSpec] = {}
    ranges: dict[str, MeasuringRange] = {}
    calibrations: dict[str, CalibrationHistory] = {}
    contracts: list[Contract] = []
    for tenant in parsed.tenants:
        if tenant.id in tenants:
            raise FleetError(f"tenant {tenant.id!r} is declared twice")
        own = [
            ClientDocument(client=c).contract(tenant.id)
            if isinstance(c, str)
            else c.contract(tenant.id)
            for c in tenant.clients
        ]
        contracts.extend(own)
        clients = tuple(dict.fromkeys(c.client for c in own))
        tenants[tenant.id] = tenant.tenant(clients)
        for site in tenant.sites:
            if (tenant.id, site.id) in sites:
                raise FleetError(f"site {tenant.id}/{site.id} is declared twice")
            sites[(tenant.id, site.id)] = Site(tenant.id, site.id, site.name)
            for gateway in site.gateways:
                key = (tenant.id, site.id, gateway.id)
                if key in gateways:
                    raise FleetError(f"gateway {'/'.join(key)} is declared twice")
                gateways[key] = Gateway(*key, gateway.description)
            for item in site.instruments:
                where = f"{tenant.id}/{site.id}/{item.id}"
                if item.id in instruments:
                    raise FleetError(
                        f"{where}: instrument id is already used elsewhere in the fleet"
                    )
                spec = item.spec(
                    tenant.id,
                    site.id,
                    default_rule=tenant.decision_rule,
                    default_policy=tenant.interval_policy,
                    shared_gateways=tenant.shared_gateways,
                )
                instruments[item.id] = spec
                assert spec.measuring_range is not None
                ranges[item.id] = spec.measuring_range
                gateways.setdefault((tenant.id, site.id, item.gateway),
                                    Gateway(tenant.id, site.id, item.gateway))  # fmt: skip
                calibrations[item.id] = _history(item, where)
    _check_contracts(tenants, contracts)
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
    as_of = None if parsed.as_of is None else to_epoch(parsed.as_of)
    return Fleet(parsed.fleet, as_of, tenants, sites, instruments, ranges, calibrations,
                 gateways, tuple(contracts))  # fmt: skip


def _check_contracts(tenants: Mapping[str, Tenant], contracts: list[Contract]) -> None:
    for tenant_id, tenant in tenants.items():
        unknown = [c for c in tenant.clients if c not in tenants]
        if unknown:
            raise FleetError(f"tenant {tenant_id!r} names unknown client tenants {unknown}")
        if tenant.clients and tenant.kind is not TenantKind.CALIBRATION_PROVIDER:
            raise FleetError(f"tenant {tenant_id!r} has clients but is not a calibration_provider")
        if tenant_id in tenant.clients:
            raise FleetError(f"tenant {tenant_id!r} names itself as a client")
    for n, contract in enumerate(contracts):
        for other in contracts[n + 1 :]:
            if contract.overlaps(other):
                raise FleetError(
                    f"tenant {contract.provider!r}: two contracts with client "
                    f"{contract.client!r} overlap in time"
                )


def _rule(text: str | None) -> DecisionRule | None:
    return None if text is None else DecisionRule.parse(text)


def _history(item: FleetInstrumentDocument, where: str) -> CalibrationHistory:
    """The instrument's certificates, each with its amendments as later revisions."""
    records = []
    for cal in item.calibrations:
        try:
            records.append(cal.record(item.id, item.unit))
        except (UnitError, CalibrationError) as exc:
            raise FleetError(f"{where} calibration {cal.certificate}: {exc}") from exc
    try:
        history = CalibrationHistory(records)
    except CalibrationError as exc:
        raise FleetError(f"{where}: {exc}") from exc
    for cal, record in zip(item.calibrations, records, strict=True):
        newest = record
        for change in sorted(cal.amendments, key=lambda a: a.revision):
            what = f"{where} calibration {cal.certificate} amendment {change.revision}"
            try:
                revised = change.revised(newest, item.unit)
                amendment = Amendment(
                    cal.certificate, change.revision, to_epoch(change.at), change.by, change.reason
                )
                history = history.amend(revised, amendment)
            except (UnitError, CalibrationError) as exc:
                raise FleetError(f"{what}: {exc}") from exc
            newest = history.audit_trail(cal.certificate)[-1]
    return history
