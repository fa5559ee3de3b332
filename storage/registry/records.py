"""What registry operations and scoped reads return: plain, frozen values, one per entity.

Every field is a JSON value (text, number, boolean, ``None``, a mapping of them), so an API
handler returns ``dataclasses.asdict(value)`` as it is; times are epoch seconds, UTC; values are
in the instrument's registered unit. The audit trail's ``before`` and ``after`` are these same
mappings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, TypeVar

from metrology.conformity import DecisionRule
from metrology.fleet import TenantKind
from metrology.instrument import (
    InstrumentSpec,
    MeasuringRange,
    ReferenceKind,
    ReferenceRelation,
    Tolerance,
)
from metrology.intervals import StaircasePolicy
from metrology.tenancy import Contract, ContractScope, Role
from storage.rows import to_json

_T = TypeVar("_T")


def _policy(document: str | None) -> dict[str, Any] | None:
    return None if document is None else dict(json.loads(document))


@dataclass(frozen=True, slots=True)
class TenantRecord:
    tenant_id: str
    name: str
    kind: str
    decision_rule: str | None
    """The tenant's default conformity decision rule (canonical text; None: the platform's)."""
    interval_policy: dict[str, Any] | None
    """The tenant's default ILAC-G24 staircase (every key; None: the platform's)."""
    shared_gateways: bool

    @classmethod
    def from_row(cls, row: Any) -> TenantRecord:
        return cls(
            row.tenant_id, row.name, row.kind, row.decision_rule, _policy(row.interval_policy),
            bool(row.shared_gateways),
        )  # fmt: skip

    @property
    def tenant_kind(self) -> TenantKind:
        return TenantKind(self.kind)


@dataclass(frozen=True, slots=True)
class SiteRecord:
    tenant: str
    site_id: str
    name: str


@dataclass(frozen=True, slots=True)
class GatewayRecord:
    tenant: str
    site: str
    gateway_id: str
    description: str
    created_at: float
    retired_at: float | None


@dataclass(frozen=True, slots=True)
class InstrumentRecord:
    """One registered instrument, as the ``instruments`` row holds it."""

    instrument_id: str
    tenant: str
    site: str
    gateway: str
    measurand: str
    unit: str
    tolerance_lower: float | None
    tolerance_upper: float | None
    tolerance_relative: float
    reporting_period_s: float
    reference_kind: str
    peer_group: str | None
    reference_instrument: str | None
    range_low: float
    range_high: float
    description: str
    decision_rule: str | None
    interval_policy: dict[str, Any] | None
    retired_at: float | None

    @classmethod
    def from_row(cls, row: Any) -> InstrumentRecord:
        values = dict(row._mapping)
        values["interval_policy"] = _policy(values["interval_policy"])
        return cls(**values)

    @classmethod
    def from_spec(cls, spec: InstrumentSpec, retired_at: float | None = None) -> InstrumentRecord:
        measuring_range = spec.measuring_range
        if measuring_range is None:
            raise ValueError(f"instrument {spec.instrument_id} has no measuring range")
        return cls(
            instrument_id=spec.instrument_id,
            tenant=spec.tenant,
            site=spec.site,
            gateway=spec.gateway,
            measurand=spec.measurand,
            unit=spec.unit,
            tolerance_lower=spec.tolerance.lower,
            tolerance_upper=spec.tolerance.upper,
            tolerance_relative=spec.tolerance.relative,
            reporting_period_s=spec.reporting_period_s,
            reference_kind=spec.reference.kind.value,
            peer_group=spec.reference.peer_group,
            reference_instrument=spec.reference.reference_instrument,
            range_low=measuring_range.low,
            range_high=measuring_range.high,
            description=spec.description,
            decision_rule=None if spec.decision_rule is None else str(spec.decision_rule),
            interval_policy=None if spec.interval_policy is None else asdict(spec.interval_policy),
            retired_at=retired_at,
        )

    def spec(self, shared_gateways: bool = False) -> InstrumentSpec:
        """The domain's instrument (``shared_gateways`` is the tenant's option)."""
        return InstrumentSpec(
            instrument_id=self.instrument_id,
            tenant=self.tenant,
            site=self.site,
            gateway=self.gateway,
            measurand=self.measurand,
            unit=self.unit,
            tolerance=Tolerance(
                self.tolerance_lower, self.tolerance_upper, self.tolerance_relative
            ),
            reporting_period_s=self.reporting_period_s,
            reference=ReferenceRelation(
                ReferenceKind(self.reference_kind), self.peer_group, self.reference_instrument
            ),
            description=self.description,
            decision_rule=None
            if self.decision_rule is None
            else DecisionRule.parse(self.decision_rule),
            interval_policy=None
            if self.interval_policy is None
            else StaircasePolicy(**self.interval_policy),
            measuring_range=MeasuringRange(self.range_low, self.range_high),
            shared_gateways=shared_gateways,
        )

    def row(self) -> dict[str, Any]:
        """The ``instruments`` row (the interval policy as JSON text)."""
        values = asdict(self)
        policy = values["interval_policy"]
        values["interval_policy"] = policy_json(policy)
        return values


def policy_json(policy: Mapping[str, Any] | None) -> str | None:
    """An interval policy as the registry stores it (JSON text; None: the default)."""
    return None if policy is None else to_json(policy)


@dataclass(frozen=True, slots=True)
class ContractRecord:
    """A provider-client contract as stored: its id, period, and how it ended (if it did)."""

    contract_id: int
    provider: str
    client: str
    scope: str
    valid_from: float | None
    valid_until: float | None
    created_at: float
    ended_at: float | None
    end_reason: str | None

    @classmethod
    def from_row(cls, row: Any) -> ContractRecord:
        return cls(**dict(row._mapping))

    @property
    def contract(self) -> Contract:
        return Contract(
            self.provider, self.client, ContractScope(self.scope), self.valid_from, self.valid_until
        )


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """An API token as listed: never its secret, nor the secret's digest."""

    token_id: str
    tenant: str
    role: str
    name: str
    created_at: float
    created_by: str
    expires_at: float | None
    revoked_at: float | None

    @property
    def token_role(self) -> Role:
        return Role(self.role)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token: ``token`` is the secret string, shown once and stored nowhere."""

    token: str = field(repr=False)
    record: TokenRecord


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row of the audit trail: when, who, what, before and after, why."""

    id: int
    at: float
    principal: str
    principal_tenant: str | None
    role: str
    token_id: str
    operation: str
    entity: str
    entity_key: str
    tenant: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None

    @classmethod
    def from_row(cls, row: Any) -> AuditEntry:
        values = dict(row._mapping)
        for side in ("before", "after"):
            values[side] = None if values[side] is None else json.loads(values[side])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class RegistryChange:
    """One entry of the change log: the running pipeline reloads ``kind`` ``key``."""

    seq: int
    at: float
    kind: str
    operation: str
    tenant: str | None
    key: str


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ended: the (time, id) of its last item; the next page starts after it."""

    ts: float
    id: int


@dataclass(frozen=True, slots=True)
class Page(Generic[_T]):
    """Items newest first; ``next`` is the cursor of the following page (None: the last)."""

    items: Sequence[_T]
    next: Cursor | None


@dataclass(frozen=True, slots=True)
class DueEntry:
    """An instrument and the certificate in force that sets its due date (None: never
    calibrated, first in the due list)."""

    instrument_id: str
    tenant: str
    site: str
    certificate_id: str | None
    revision: int | None
    calibrated_at: float | None
    due_at: float | None


@dataclass(frozen=True, slots=True)
class SeriesBucket:
    """Readings of one instrument in ``[start, end)``: counts, means and extremes.

    With no more readings in the range than the points asked for, each bucket is one reading
    (``start == end == ts``). The residual numbers are over the readings that have one
    (``residuals`` of them; ``None`` when none has).
    """

    start: float
    end: float
    ts: float
    """Mean time of the readings in the bucket (where to draw the point)."""
    readings: int
    value: float
    value_min: float
    value_max: float
    corrected: float | None
    corrected_min: float | None
    corrected_max: float | None
    residuals: int
    residual: float | None
    residual_min: float | None
    residual_max: float | None
    u_residual: float | None
