"""The input of each registry operation: one pydantic model per operation, unknown keys refused.

They extend the fleet file's entity models (:mod:`metrology.fleet`), so an instrument, a
certificate or a contract is validated the same way from a fleet file, the command line and the
HTTP API. Every model carries an optional ``reason`` (the audit trail's "why"); it is required
for amendments, retirements, contract ends and token revocations. Invalid input raises
:class:`~storage.errors.InvalidDocumentError` listing every field with its message
(:func:`validated`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from metrology.fleet import (
    CalibrationAmendmentDocument,
    CalibrationDocument,
    ClientDocument,
    GatewayDocument,
    Identifier,
    InstrumentDocument,
    IntervalPolicyDocument,
    ReferenceDocument,
    Rule,
    SiteDocument,
    TenantDocument,
    Text,
    ToleranceDocument,
    describe_errors,
)
from metrology.tenancy import Role
from storage.errors import InvalidDocumentError

__all__ = [
    "AmendCalibration",
    "ChangeInstrument",
    "CreateContract",
    "CreateSite",
    "CreateTenant",
    "CreateToken",
    "EndContract",
    "RecordCalibration",
    "RegisterGateway",
    "RegisterInstrument",
    "RetireInstrument",
    "RevokeToken",
    "validated",
]

_STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
_Reason = Annotated[str, Field(max_length=1000)] | None
_Model = TypeVar("_Model", bound=BaseModel)


class CreateTenant(TenantDocument):
    """A new tenant (the local principal only)."""

    reason: _Reason = None


class CreateSite(SiteDocument):
    tenant: Identifier
    reason: _Reason = None


class RegisterGateway(GatewayDocument):
    tenant: Identifier
    site: Identifier
    reason: _Reason = None


class RegisterInstrument(InstrumentDocument):
    """A new instrument at a registered site, on a registered gateway of that site.

    Without ``decision_rule`` or ``interval_policy``, the tenant's apply (as in a fleet file).
    """

    tenant: Identifier
    site: Identifier
    reason: _Reason = None


CHANGEABLE = ("tolerance", "interval_policy", "reference", "site", "gateway", "decision_rule",
              "period_s", "description")  # fmt: skip
"""The fields of an instrument :class:`ChangeInstrument` may change."""


class ChangeInstrument(BaseModel):
    """What changes about a registered instrument; the fields left out stay as they are.

    ``decision_rule`` and ``interval_policy`` given as ``null`` return to the tenant's (or the
    platform's) default. The unit, measurand and range are not changed: the stored history is
    in them (register a new instrument instead).
    """

    model_config = _STRICT
    instrument_id: Identifier
    tolerance: ToleranceDocument | None = None
    interval_policy: IntervalPolicyDocument | None = None
    reference: ReferenceDocument | None = None
    site: Identifier | None = None
    gateway: Identifier | None = None
    decision_rule: Rule | None = None
    period_s: Annotated[float, Field(gt=0, le=1e9)] | None = None
    description: Annotated[str, Field(max_length=1000)] | None = None
    reason: _Reason = None

    @model_validator(mode="after")
    def _changes_something(self) -> ChangeInstrument:
        if not self.changed_fields():
            raise ValueError(f"a change names at least one of {', '.join(CHANGEABLE)}")
        for name in ("tolerance", "reference", "site", "gateway", "period_s", "description"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changed_fields(self) -> list[str]:
        return [name for name in CHANGEABLE if name in self.model_fields_set]


class RetireInstrument(BaseModel):
    """Retire an instrument: it stays, with its history, and takes no new entries."""

    model_config = _STRICT
    instrument_id: Identifier
    reason: Text


class RecordCalibration(CalibrationDocument):
    """A new certificate of a registered instrument (revision 0)."""

    instrument_id: Identifier
    reason: _Reason = None


class AmendCalibration(CalibrationAmendmentDocument):
    """A new revision of a recorded certificate (ISO/IEC 17025:2017 §7.8.8); ``reason`` is
    required, who and when are the caller and the time of the operation."""

    instrument_id: Identifier
    certificate: Annotated[str, Field(min_length=1, max_length=128)]


class CreateContract(ClientDocument):
    """``provider`` (a calibration provider) serves ``client`` with ``scope``."""

    provider: Identifier
    reason: _Reason = None


class EndContract(BaseModel):
    """End a contract at ``at`` (None: now); it grants nothing from then on."""

    model_config = _STRICT
    contract_id: Annotated[int, Field(ge=1)]
    at: AwareDatetime | None = None
    reason: Text


class CreateToken(BaseModel):
    """A new API token for ``tenant`` with ``role``; ``expires_at`` None: until revoked."""

    model_config = _STRICT
    tenant: Identifier
    role: Role
    name: Text
    expires_at: AwareDatetime | None = None
    reason: _Reason = None


class RevokeToken(BaseModel):
    model_config = _STRICT
    token_id: Annotated[str, Field(min_length=1, max_length=64)]
    reason: Text


def validated(model: type[_Model], document: _Model | Mapping[str, Any]) -> _Model:
    """``document`` as ``model``: a model instance is taken as it is, a mapping is validated;
    :class:`InvalidDocumentError` names every invalid field."""
    if isinstance(document, model):
        return document
    if isinstance(document, BaseModel):
        document = document.model_dump(exclude_unset=True)
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        errors = [
            (".".join(str(p) for p in e["loc"]) or "document", e["msg"])
            for e in exc.errors(include_url=False)
        ]
        raise InvalidDocumentError(
            f"invalid {model.__name__} document:\n{describe_errors(exc)}", errors
        ) from exc
