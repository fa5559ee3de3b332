"""Registry operations: every change people make to the registry, one transaction each.

:class:`RegistryOperations` has one method per operation, for the fleet file loader, the command
line and the HTTP API alike (DESIGN.md, "The people's side"); an API handler is one call::

    principal = store.operations.authenticate(token)
    record = store.operations.record_calibration(principal, body)  # a mapping or the model

Each operation, in ONE transaction, on SQLite and PostgreSQL:

1. validates its document (:mod:`storage.registry.documents`; :class:`InvalidDocumentError`
   names every bad field);
2. computes the principal's :class:`~metrology.tenancy.Scope` from the contracts in force now
   and refuses what is outside it (:class:`PermissionDeniedError`; outside the scope an object
   of another tenant and an object that does not exist are refused alike);
3. checks the change against what is stored (:class:`ConflictError`: a duplicate id, a
   certificate that overlaps another in time, a revision stored with other content, ...;
   :class:`NotFoundError`: an unknown site or gateway, a certificate not recorded);
4. writes the change, one ``registry_audit`` row (who, when, what, before and after, why) and
   one ``registry_changes`` row (:mod:`storage.registry.audit`).

A refused operation writes nothing: the transaction is rolled back whole. Operations are
serialised (:func:`storage.registry.audit.serialise`), so their checks cannot race.

Nothing is deleted: instruments are retired (``retired_at``) and keep their history;
certificates are amended into new revisions (ISO/IEC 17025:2017 §7.8.8); contracts end; tokens
are revoked.

:meth:`RegistryOperations.register_fleet` registers a fleet file through the same operations, as
the local principal, in one transaction, idempotently: what is stored as the file says is left
alone (no audit row); what differs is changed (an instrument's row, a tenant's or site's name,
a gateway's description: audited); a stored certificate revision is never changed (refused);
what the file no longer lists stays (instruments retired or contracts ended by an operation are
not revived).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, select, update

from metrology.audit import Amendment
from metrology.calibration import CalibrationHistory, CalibrationRecord
from metrology.conformity import DecisionRule
from metrology.curves import CurveCorrection
from metrology.errors import CalibrationError, UnitError
from metrology.fleet import Fleet, Gateway, IntervalPolicyDocument, Site, Tenant, TenantKind
from metrology.tenancy import Contract, ContractScope, Principal, Scope, scope_of
from metrology.timebase import iso, to_epoch
from storage.errors import (
    ConflictError,
    InvalidDocumentError,
    NotFoundError,
    PermissionDeniedError,
)
from storage.registry import audit, queries, scoped, tokens
from storage.registry.documents import (
    AmendCalibration,
    ChangeInstrument,
    CreateContract,
    CreateSite,
    CreateTenant,
    CreateToken,
    EndContract,
    RecordCalibration,
    RegisterGateway,
    RegisterInstrument,
    RetireInstrument,
    RevokeToken,
    validated,
)
from storage.registry.pages import check_limit
from storage.registry.records import (
    AuditEntry,
    ContractRecord,
    Cursor,
    GatewayRecord,
    InstrumentRecord,
    IssuedToken,
    Page,
    RegistryChange,
    SiteRecord,
    TenantRecord,
    TokenRecord,
    policy_json,
)
from storage.registry.tables import (
    api_tokens,
    calibration_curve_points,
    calibrations,
    contracts,
    gateways,
    instruments,
    sites,
    tenant_clients,
    tenants,
)
from storage.registry.writes import revision_row

log = logging.getLogger(__name__)

_T = TypeVar("_T")

Document = Mapping[str, Any]


class Transact(Protocol):
    """Runs ``work`` on a connection in one transaction (a writing one when ``write``)."""

    def __call__(self, what: str, work: Callable[[Connection], _T], *, write: bool) -> _T: ...


@dataclass
class _Act:
    """One operation under way: its connection, the caller's scope, its time."""

    connection: Connection
    scope: Scope
    at: float
    fleet: bool = False
    """Registering a fleet file: what is stored as the file says is left alone."""
    changes: int = 0

    @property
    def principal(self) -> Principal:
        return self.scope.principal

    def audit(
        self,
        operation: str,
        entity: str,
        key: str,
        tenant: str | None,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        reason: str | None,
    ) -> None:
        audit.record(
            self.connection, self.principal, self.at, operation=operation, entity=entity,
            key=key, tenant=tenant, before=before, after=after, reason=reason,
        )  # fmt: skip
        self.changes += 1


def load_scope(connection: Connection, principal: Principal, at: float) -> Scope:
    """The principal's scope at ``at``, from its tenant's contracts as provider."""
    if principal.is_local or principal.tenant is None:
        return scope_of(principal, (), at)
    rows = connection.execute(select(contracts).where(contracts.c.provider == principal.tenant))
    return scope_of(principal, [ContractRecord.from_row(r).contract for r in rows], at)


# --- refusals ---


def _who(principal: Principal) -> str:
    if principal.is_local:
        return f"{principal.name!r} (local)"
    return f"{principal.name!r} ({principal.role.value} of {principal.tenant})"


def _not_allowed(act: _Act, action: str, tenant: str) -> PermissionDeniedError:
    return PermissionDeniedError(
        f"{action}: {_who(act.principal)} may not do this for tenant {tenant!r}"
    )


def _invalid(field: str, message: str) -> InvalidDocumentError:
    return InvalidDocumentError(f"{field}: {message}", [(field, message)])


def _tenant(connection: Connection, tenant_id: str) -> TenantRecord | None:
    row = connection.execute(select(tenants).where(tenants.c.tenant_id == tenant_id)).first()
    return None if row is None else TenantRecord.from_row(row)


def _administered(act: _Act, tenant_id: str, action: str) -> TenantRecord:
    """The tenant, if the caller administers it."""
    scope = act.scope
    if not scope.may_read(tenant_id):
        raise scoped.denied(scope, "tenant", tenant_id)
    if not scope.may_administer(tenant_id):
        raise _not_allowed(act, action, tenant_id)
    found = _tenant(act.connection, tenant_id)
    if found is None:
        raise scoped.missing(scope, "tenant", tenant_id)
    return found


# --- tenants, sites, gateways ---


def _tenant_row(record: TenantRecord) -> dict[str, Any]:
    row = asdict(record)
    row["interval_policy"] = policy_json(record.interval_policy)
    return row


def tenant_record(tenant: Tenant) -> TenantRecord:
    return TenantRecord(
        tenant.tenant_id,
        tenant.name,
        tenant.kind.value,
        None if tenant.decision_rule is None else str(tenant.decision_rule),
        None if tenant.interval_policy is None else asdict(tenant.interval_policy),
        tenant.shared_gateways,
    )


def put_tenant(act: _Act, tenant: Tenant, reason: str | None) -> TenantRecord:
    if not act.scope.creates_tenants:
        raise PermissionDeniedError(
            f"create tenant {tenant.tenant_id!r}: {_who(act.principal)} may not; tenants are "
            "created by the server's own command line"
        )
    new = tenant_record(tenant)
    old = _tenant(act.connection, tenant.tenant_id)
    if old is not None:
        if not act.fleet:
            raise ConflictError(f"tenant {tenant.tenant_id!r} already exists")
        if old == new:
            return old
        act.connection.execute(
            update(tenants).where(tenants.c.tenant_id == new.tenant_id).values(_tenant_row(new))
        )
        act.audit("update_tenant", "tenant", new.tenant_id, new.tenant_id, asdict(old),
                  asdict(new), reason)  # fmt: skip
        return new
    act.connection.execute(tenants.insert(), _tenant_row(new))
    act.audit("create_tenant", "tenant", new.tenant_id, new.tenant_id, None, asdict(new), reason)
    return new


def put_site(act: _Act, site: Site, reason: str | None) -> SiteRecord:
    key = f"{site.tenant}/{site.site_id}"
    _administered(act, site.tenant, f"create site {key}")
    new = SiteRecord(site.tenant, site.site_id, site.name)
    where = (sites.c.tenant == site.tenant, sites.c.site_id == site.site_id)
    row = act.connection.execute(select(sites).where(*where)).first()
    if row is not None:
        old = SiteRecord(*row)
        if not act.fleet:
            raise ConflictError(f"site {key!r} already exists")
        if old == new:
            return old
        act.connection.execute(update(sites).where(*where).values(name=new.name))
        act.audit("update_site", "site", key, site.tenant, asdict(old), asdict(new), reason)
        return new
    act.connection.execute(sites.insert(), asdict(new))
    act.audit("create_site", "site", key, site.tenant, None, asdict(new), reason)
    return new


def _require_site(act: _Act, tenant: str, site: str) -> None:
    where = (sites.c.tenant == tenant, sites.c.site_id == site)
    if act.connection.execute(select(sites.c.site_id).where(*where)).first() is None:
        raise NotFoundError(f"site: {tenant}/{site} is not registered")


def put_gateway(act: _Act, gateway: Gateway, reason: str | None) -> GatewayRecord:
    key = f"{gateway.tenant}/{gateway.site}/{gateway.gateway_id}"
    _administered(act, gateway.tenant, f"register gateway {key}")
    _require_site(act, gateway.tenant, gateway.site)
    g = gateways.c
    where = (g.tenant == gateway.tenant, g.site == gateway.site, g.gateway_id == gateway.gateway_id)
    row = act.connection.execute(select(gateways).where(*where)).first()
    if row is not None:
        old = GatewayRecord(**dict(row._mapping))
        if not act.fleet:
            raise ConflictError(f"gateway {key!r} already exists")
        if old.description == gateway.description:
            return old
        new = replace(old, description=gateway.description)
        act.connection.execute(update(gateways).where(*where).values(description=new.description))
        act.audit("update_gateway", "gateway", key, gateway.tenant, asdict(old), asdict(new),
                  reason)  # fmt: skip
        return new
    new = GatewayRecord(gateway.tenant, gateway.site, gateway.gateway_id, gateway.description,
                        act.at, None)  # fmt: skip
    act.connection.execute(gateways.insert(), asdict(new))
    act.audit("register_gateway", "gateway", key, gateway.tenant, None, asdict(new), reason)
    return new


# --- instruments ---


def _require_place(act: _Act, tenant: str, site: str, gateway: str) -> None:
    """The site is registered and the gateway is registered at it and not retired."""
    _require_site(act, tenant, site)
    g = gateways.c
    row = act.connection.execute(
        select(g.retired_at).where(g.tenant == tenant, g.site == site, g.gateway_id == gateway)
    ).first()
    if row is None:
        raise NotFoundError(
            f"gateway: {tenant}/{site}/{gateway} is not registered (register the gateway first)"
        )
    if row.retired_at is not None:
        raise ConflictError(f"gateway: {tenant}/{site}/{gateway} is retired")


def _write_instrument(act: _Act, record: InstrumentRecord, *, new: bool) -> None:
    row = record.row()
    if new:
        act.connection.execute(instruments.insert(), row)
    else:
        act.connection.execute(
            update(instruments)
            .where(instruments.c.instrument_id == record.instrument_id)
            .values(row)
        )


def put_instrument(act: _Act, record: InstrumentRecord, reason: str | None) -> InstrumentRecord:
    key = record.instrument_id
    _administered(act, record.tenant, f"register instrument {key!r}")
    _require_place(act, record.tenant, record.site, record.gateway)
    row = act.connection.execute(
        select(instruments).where(instruments.c.instrument_id == key)
    ).first()
    if row is None:
        _write_instrument(act, record, new=True)
        act.audit("register_instrument", "instrument", key, record.tenant, None, asdict(record),
                  reason)  # fmt: skip
        return record
    old = InstrumentRecord.from_row(row)
    # Instrument ids are global (they travel in topics and series): a duplicate is refused
    # whoever holds it, without saying who.
    if not act.fleet or old.tenant != record.tenant:
        raise ConflictError(f"instrument id {key!r} is already registered")
    if old.retired_at is not None:
        return old  # retired by an operation: the fleet file does not revive it
    if old == record:
        return old
    _write_instrument(act, record, new=False)
    act.audit("change_instrument", "instrument", key, record.tenant, asdict(old), asdict(record),
              reason)  # fmt: skip
    return record


def _administered_instrument(act: _Act, instrument_id: str, action: str) -> InstrumentRecord:
    row = scoped.visible_instrument(act.connection, act.scope, instrument_id)
    if not act.scope.may_administer(row.tenant):
        raise _not_allowed(act, action, row.tenant)
    record = InstrumentRecord.from_row(row)
    if record.retired_at is not None:
        raise ConflictError(
            f"instrument {instrument_id!r} was retired at {iso(record.retired_at)}: it takes no "
            "changes"
        )
    return record


def change_instrument(act: _Act, document: ChangeInstrument) -> InstrumentRecord:
    key = document.instrument_id
    old = _administered_instrument(act, key, f"change instrument {key!r}")
    tenant = _tenant(act.connection, old.tenant)
    assert tenant is not None  # an instrument's tenant is registered before it
    given = document.model_fields_set
    changes: dict[str, Any] = {}
    if "tolerance" in given and document.tolerance is not None:
        lower, upper = document.tolerance.limits()
        changes.update(tolerance_lower=lower, tolerance_upper=upper,
                       tolerance_relative=document.tolerance.relative)  # fmt: skip
    if "interval_policy" in given:
        policy = document.interval_policy
        changes["interval_policy"] = (
            tenant.interval_policy if policy is None else asdict(policy.policy())
        )
    if "reference" in given and document.reference is not None:
        reference = document.reference
        changes.update(reference_kind=reference.kind.value, peer_group=reference.group,
                       reference_instrument=reference.instrument)  # fmt: skip
    if "decision_rule" in given:
        rule = document.decision_rule
        changes["decision_rule"] = (
            tenant.decision_rule if rule is None else str(DecisionRule.parse(rule))
        )
    for name, column in (("site", "site"), ("gateway", "gateway"), ("period_s",
                         "reporting_period_s"), ("description", "description")):  # fmt: skip
        if name in given and getattr(document, name) is not None:
            changes[column] = getattr(document, name)
    new = replace(old, **changes)
    if (new.site, new.gateway) != (old.site, old.gateway):
        _require_place(act, new.tenant, new.site, new.gateway)
    if new == old:
        return old
    _write_instrument(act, new, new=False)
    act.audit("change_instrument", "instrument", key, new.tenant, asdict(old), asdict(new),
              document.reason)  # fmt: skip
    return new


def retire_instrument(act: _Act, document: RetireInstrument) -> InstrumentRecord:
    key = document.instrument_id
    old = _administered_instrument(act, key, f"retire instrument {key!r}")
    new = replace(old, retired_at=act.at)
    act.connection.execute(
        update(instruments).where(instruments.c.instrument_id == key).values(retired_at=act.at)
    )
    act.audit("retire_instrument", "instrument", key, new.tenant, asdict(old), asdict(new),
              document.reason)  # fmt: skip
    return new


# --- calibrations ---


def _calibrated_instrument(act: _Act, instrument_id: str, action: str) -> InstrumentRecord:
    row = scoped.visible_instrument(act.connection, act.scope, instrument_id)
    if not act.scope.may_calibrate(row.tenant):
        raise _not_allowed(act, action, row.tenant)
    record = InstrumentRecord.from_row(row)
    if record.retired_at is not None:
        raise ConflictError(
            f"instrument {instrument_id!r} was retired at {iso(record.retired_at)}: it takes no "
            "new certificate or revision"
        )
    return record


def revision_document(record: CalibrationRecord) -> dict[str, Any]:
    """A revision as the audit trail shows it: its row, and its curve's points if it has one."""
    document = revision_row(record)
    if isinstance(record.correction, CurveCorrection):
        document["points"] = [list(point) for point in record.correction.points]
    return document


def _insert_revision(act: _Act, record: CalibrationRecord) -> None:
    """Store a revision as the one in force of its certificate (revisions only increase)."""
    c = calibrations.c
    act.connection.execute(
        update(calibrations)
        .where(c.instrument_id == record.instrument_id, c.certificate_id == record.certificate_id)
        .values(in_force=False)
    )
    act.connection.execute(calibrations.insert(), {**revision_row(record), "in_force": True})
    if isinstance(record.correction, CurveCorrection):
        key = {
            "instrument_id": record.instrument_id,
            "certificate_id": record.certificate_id,
            "revision": record.revision,
        }
        act.connection.execute(
            calibration_curve_points.insert(),
            [
                {**key, "point": n, "indication": x, "correction": c}
                for n, (x, c) in enumerate(record.correction.points)
            ],
        )


def _check_dates(
    record: CalibrationRecord, history: CalibrationHistory, previous_date: float | None = None
) -> None:
    """Calibration dates are strictly increasing per instrument: a new certificate is dated
    after every other; an amended date keeps its certificate between the same neighbours."""
    others = [r for r in history.records if r.certificate_id != record.certificate_id]
    if previous_date is None:
        clash = max(others, key=lambda r: r.calibrated_at, default=None)
        if clash is not None and record.calibrated_at <= clash.calibrated_at:
            raise ConflictError(
                f"certificate {record.certificate_id!r} of {record.instrument_id!r} dated "
                f"{iso(record.calibrated_at)} overlaps certificate {clash.certificate_id!r} "
                f"dated {iso(clash.calibrated_at)}: calibration dates must be strictly "
                "increasing per instrument"
            )
        return
    for other in others:
        was_before = other.calibrated_at < previous_date
        if (was_before and other.calibrated_at >= record.calibrated_at) or (
            not was_before and other.calibrated_at <= record.calibrated_at
        ):
            raise ConflictError(
                f"certificate {record.certificate_id!r} of {record.instrument_id!r}: the amended "
                f"date {iso(record.calibrated_at)} overlaps certificate "
                f"{other.certificate_id!r} dated {iso(other.calibrated_at)}"
            )


def record_calibration(
    act: _Act, record: CalibrationRecord, reason: str | None
) -> CalibrationRecord:
    key = f"{record.instrument_id}/{record.certificate_id}"
    instrument = _calibrated_instrument(
        act, record.instrument_id, f"record certificate {record.certificate_id!r}"
    )
    history = queries.calibration_history(act.connection, record.instrument_id)
    if any(r.certificate_id == record.certificate_id for r in history.all_revisions):
        raise ConflictError(
            f"certificate {record.certificate_id!r} of {record.instrument_id!r} is already "
            "recorded: amend it instead"
        )
    _check_dates(record, history)
    _insert_revision(act, record)
    act.audit("record_calibration", "calibration", key, instrument.tenant, None,
              revision_document(record), reason)  # fmt: skip
    return record


def add_revision(
    act: _Act, previous: CalibrationRecord, revised: CalibrationRecord, amendment: Amendment
) -> CalibrationRecord:
    """Store ``revised`` as revision ``amendment.revision`` of ``previous``'s certificate."""
    key = f"{previous.instrument_id}/{previous.certificate_id}"
    instrument = _calibrated_instrument(
        act, previous.instrument_id, f"amend certificate {previous.certificate_id!r}"
    )
    history = queries.calibration_history(act.connection, previous.instrument_id)
    try:
        amended = history.amend(revised, amendment).audit_trail(previous.certificate_id)[-1]
    except CalibrationError as exc:
        raise ConflictError(f"amend {key}: {exc}") from exc
    _check_dates(amended, history, previous.calibrated_at)
    _insert_revision(act, amended)
    act.audit("amend_calibration", "calibration", key, instrument.tenant,
              revision_document(previous), revision_document(amended),
              amendment.reason)  # fmt: skip
    return amended


def amend_calibration(act: _Act, document: AmendCalibration) -> CalibrationRecord:
    key = f"{document.instrument_id}/{document.certificate}"
    instrument = _calibrated_instrument(
        act, document.instrument_id, f"amend certificate {document.certificate!r}"
    )
    history = queries.calibration_history(act.connection, document.instrument_id)
    try:
        previous = history.audit_trail(document.certificate)[-1]
    except CalibrationError as exc:
        raise NotFoundError(f"certificate: {key} is not recorded") from exc
    try:
        revised = document.revised(previous, instrument.unit)
    except UnitError as exc:
        raise _invalid("unit", str(exc)) from exc
    except CalibrationError as exc:
        raise InvalidDocumentError(f"amend {key}: {exc}") from exc
    amendment = Amendment(
        document.certificate, previous.revision + 1, act.at, act.principal.name, document.reason
    )
    return add_revision(act, previous, revised, amendment)


_REVISION_CONTENT = (
    "calibrated_at", "correction_kind", "correction_offset", "correction_gain",
    "expanded_uncertainty", "coverage_factor", "interval_days", "as_found_error", "amended_at",
    "amended_by", "amendment_reason",
)  # fmt: skip


def _refuse_changed(stored: CalibrationRecord, wanted: CalibrationRecord) -> None:
    """A revision once stored is never changed (ISO/IEC 17025:2017 §7.5.2)."""
    old, new = revision_row(stored), revision_row(wanted)
    changed = [c for c in _REVISION_CONTENT if old[c] != new[c]]
    if not changed and stored.correction != wanted.correction:
        changed = ["curve points"]
    if changed:
        raise ConflictError(
            f"certificate {wanted.certificate_id} revision {wanted.revision} of "
            f"{wanted.instrument_id} is registered with other {', '.join(changed)}: a "
            "registered revision is never changed; restore it in the fleet file and add the "
            "change under the certificate's 'amendments:' (a new revision with who, when and "
            "why; see metrology/fleet.py)"
        )


def put_calibrations(
    act: _Act, instrument_id: str, history: CalibrationHistory, reason: str | None
) -> None:
    """Every revision of a fleet file's certificates of one instrument, in date order (none for
    an instrument retired by an operation: it takes no new entries)."""
    retired = act.connection.execute(
        select(instruments.c.retired_at).where(instruments.c.instrument_id == instrument_id)
    ).scalar()
    if retired is not None:
        return
    stored = queries.calibration_history(act.connection, instrument_id)
    revisions = {(r.certificate_id, r.revision): r for r in stored.all_revisions}
    first = {r.certificate_id: r.calibrated_at for r in history.all_revisions if r.revision == 0}
    for record in sorted(
        history.all_revisions,
        key=lambda r: (first.get(r.certificate_id, r.calibrated_at), r.certificate_id, r.revision),
    ):
        known = revisions.get((record.certificate_id, record.revision))
        if known is not None:
            _refuse_changed(known, record)
            continue
        if record.amendment is None:
            stored_record = record_calibration(act, record, reason)
        else:
            current = queries.calibration_history(act.connection, instrument_id)
            try:
                previous = current.audit_trail(record.certificate_id)[-1]
            except CalibrationError as exc:
                raise ConflictError(
                    f"certificate {record.certificate_id} revision {record.revision} of "
                    f"{instrument_id}: {exc} (its revision 0 is neither stored nor given)"
                ) from exc
            stored_record = add_revision(act, previous, record, record.amendment)
        revisions[(record.certificate_id, record.revision)] = stored_record


# --- contracts ---


def _period(valid_from: float | None, valid_until: float | None) -> str:
    start = "always" if valid_from is None else iso(valid_from)
    end = "open-ended" if valid_until is None else iso(valid_until)
    return f"{start} .. {end}"


def put_contract(act: _Act, contract: Contract, reason: str | None) -> ContractRecord:
    provider, client = contract.provider, contract.client
    scope = act.scope
    if provider == client:
        raise _invalid("client", "a tenant is not its own client")
    if not scope.may_administer(client):
        if scope.may_read(client):
            raise _not_allowed(act, f"create a contract for client {client!r}", client)
        raise scoped.denied(scope, "tenant", client)
    if _tenant(act.connection, client) is None:
        raise scoped.missing(scope, "tenant", client)
    found = _tenant(act.connection, provider)
    if found is None or found.kind != TenantKind.CALIBRATION_PROVIDER.value:
        raise NotFoundError(f"provider: {provider!r} is not a registered calibration provider")
    c = contracts.c
    existing = [
        ContractRecord.from_row(row)
        for row in act.connection.execute(
            select(contracts).where(c.provider == provider, c.client == client)
        )
    ]
    if act.fleet:
        for stored in existing:
            if stored.scope == contract.scope.value and stored.valid_from == contract.valid_from:
                return stored  # the file's contract, as it is or as it was ended
    for stored in existing:
        if stored.contract.overlaps(contract):
            raise ConflictError(
                f"contract {stored.contract_id} between {provider!r} and {client!r} "
                f"({_period(stored.valid_from, stored.valid_until)}) overlaps "
                f"{_period(contract.valid_from, contract.valid_until)}: end it first"
            )
    values = {
        "provider": provider, "client": client, "scope": contract.scope.value,
        "valid_from": contract.valid_from, "valid_until": contract.valid_until,
        "created_at": act.at, "ended_at": None, "end_reason": None,
    }  # fmt: skip
    contract_id = act.connection.execute(
        contracts.insert().returning(c.contract_id), values
    ).scalar_one()
    record = ContractRecord(contract_id=int(contract_id), **values)
    pair = (tenant_clients.c.provider == provider, tenant_clients.c.client == client)
    if act.connection.execute(select(tenant_clients).where(*pair)).first() is None:
        act.connection.execute(tenant_clients.insert(), {"provider": provider, "client": client})
    act.audit("create_contract", "contract", str(record.contract_id), client, None,
              asdict(record), reason)  # fmt: skip
    return record


def end_contract(act: _Act, document: EndContract) -> ContractRecord:
    key = str(document.contract_id)
    scope = act.scope
    row = act.connection.execute(
        select(contracts).where(contracts.c.contract_id == document.contract_id)
    ).first()
    if row is None:
        raise scoped.missing(scope, "contract", key)
    old = ContractRecord.from_row(row)
    if not (scope.may_administer(old.client) or scope.may_administer(old.provider)):
        if act.principal.tenant in (old.provider, old.client):
            raise _not_allowed(act, f"end contract {key}", act.principal.tenant or "")
        raise scoped.denied(scope, "contract", key)
    if old.ended_at is not None:
        raise ConflictError(f"contract {key} was ended at {iso(old.ended_at)}")
    at = act.at if document.at is None else to_epoch(document.at)
    if at < act.at:
        raise _invalid("at", "a contract ends now or later, not in the past")
    until = at if old.valid_until is None else min(old.valid_until, at)
    if old.valid_from is not None:
        until = max(until, old.valid_from)  # ended before it began: it never grants anything
    new = replace(old, valid_until=until, ended_at=act.at, end_reason=document.reason)
    act.connection.execute(
        update(contracts)
        .where(contracts.c.contract_id == old.contract_id)
        .values(valid_until=until, ended_at=act.at, end_reason=document.reason)
    )
    act.audit("end_contract", "contract", key, old.client, asdict(old), asdict(new),
              document.reason)  # fmt: skip
    return new


# --- tokens ---


def create_token(act: _Act, document: CreateToken) -> IssuedToken:
    _administered(act, document.tenant, f"create a token for {document.tenant!r}")
    expires = None if document.expires_at is None else to_epoch(document.expires_at)
    if expires is not None and expires <= act.at:
        raise _invalid("expires_at", "must be in the future")
    issued = tokens.issue(
        act.connection, tenant=document.tenant, role=document.role, name=document.name,
        created_at=act.at, created_by=act.principal.name, expires_at=expires,
    )  # fmt: skip
    act.audit("create_token", "token", issued.record.token_id, document.tenant, None,
              asdict(issued.record), document.reason)  # fmt: skip
    return issued


def revoke_token(act: _Act, document: RevokeToken) -> TokenRecord:
    key = document.token_id
    scope = act.scope
    row = act.connection.execute(select(api_tokens).where(api_tokens.c.token_id == key)).first()
    if row is None or not scope.may_read(row.tenant):
        raise scoped.missing(scope, "token", key)
    if not scope.may_administer(row.tenant):
        raise _not_allowed(act, f"revoke token {key!r}", row.tenant)
    old = tokens.token_record(row)
    if old.revoked_at is not None:
        raise ConflictError(f"token {key!r} was revoked at {iso(old.revoked_at)}")
    new = replace(old, revoked_at=act.at)
    act.connection.execute(
        update(api_tokens).where(api_tokens.c.token_id == key).values(revoked_at=act.at)
    )
    act.audit("revoke_token", "token", key, old.tenant, asdict(old), asdict(new), document.reason)
    return new


def token_list(connection: Connection, scope: Scope, tenant: str | None) -> list[TokenRecord]:
    """Tokens of the tenants the scope administers (never a secret nor its digest)."""
    if tenant is not None and not scope.may_administer(tenant):
        if scope.may_read(tenant):
            raise PermissionDeniedError(
                f"list tokens: {_who(scope.principal)} may not do this for tenant {tenant!r}"
            )
        raise scoped.denied(scope, "tenant", tenant)
    t = api_tokens.c
    query = select(*(t[c] for c in tokens.TOKEN_COLUMNS)).order_by(t.tenant, t.created_at)
    if tenant is not None:
        query = query.where(t.tenant == tenant)
    if scope.administers is not None:
        query = query.where(t.tenant.in_(sorted(scope.administers)))
    return [tokens.token_record(row) for row in connection.execute(query)]


# --- a fleet file ---


@dataclass(frozen=True)
class _Stored:
    """The registry as it is when a fleet's registration starts (read in a few queries)."""

    tenants: dict[str, TenantRecord]
    sites: dict[tuple[str, str], SiteRecord]
    gateways: dict[tuple[str, str, str], GatewayRecord]
    instruments: dict[str, InstrumentRecord]
    calibrations: dict[str, dict[tuple[str, int], CalibrationRecord]]

    @classmethod
    def read(cls, connection: Connection) -> _Stored:
        histories = queries.calibration_histories(connection)
        return cls(
            {r.tenant_id: TenantRecord.from_row(r) for r in connection.execute(select(tenants))},
            {(r.tenant, r.site_id): SiteRecord(*r) for r in connection.execute(select(sites))},
            {
                (r.tenant, r.site, r.gateway_id): GatewayRecord(**dict(r._mapping))
                for r in connection.execute(select(gateways))
            },
            {
                r.instrument_id: InstrumentRecord.from_row(r)
                for r in connection.execute(select(instruments))
            },
            {
                instrument_id: {(r.certificate_id, r.revision): r for r in h.all_revisions}
                for instrument_id, h in histories.items()
            },
        )

    def holds_instrument(self, record: InstrumentRecord) -> bool:
        """Stored as it is, or retired by an operation (a fleet file does not revive it)."""
        old = self.instruments.get(record.instrument_id)
        return (
            old is not None
            and old.tenant == record.tenant
            and (old.retired_at is not None or old == record)
        )

    def holds_history(self, instrument_id: str, history: CalibrationHistory) -> bool:
        """Every revision stored as it is (or the instrument retired: it takes no more)."""
        old = self.instruments.get(instrument_id)
        if old is not None and old.retired_at is not None:
            return True
        stored = self.calibrations.get(instrument_id, {})
        return all(stored.get((r.certificate_id, r.revision)) == r for r in history.all_revisions)


def register_fleet(act: _Act, fleet: Fleet, reason: str | None) -> None:
    """Every entity of ``fleet`` through the operations above, in order of their references.

    What the registry already holds as the file says is skipped without a query per entity
    (the registry is read once, :class:`_Stored`): loading the same file at every start costs a
    few queries, not a few per instrument.
    """
    stored = _Stored.read(act.connection)
    for tenant in fleet.tenants.values():
        if stored.tenants.get(tenant.tenant_id) != tenant_record(tenant):
            put_tenant(act, tenant, reason)
    for site in fleet.sites.values():
        if stored.sites.get((site.tenant, site.site_id)) != SiteRecord(
            site.tenant, site.site_id, site.name
        ):
            put_site(act, site, reason)
    # The gateways the file declares, and those its instruments name.
    named = {(s.tenant, s.site, s.gateway): Gateway(s.tenant, s.site, s.gateway)
             for s in fleet.instruments.values()}  # fmt: skip
    for key, gateway in {**named, **fleet.gateways}.items():
        old = stored.gateways.get(key)
        if old is None or old.description != gateway.description:
            put_gateway(act, gateway, reason)
    for spec in fleet.instruments.values():
        measuring_range = fleet.ranges.get(spec.instrument_id, spec.measuring_range)
        record = InstrumentRecord.from_spec(replace(spec, measuring_range=measuring_range))
        if not stored.holds_instrument(record):
            put_instrument(act, record, reason)
    for instrument_id, history in fleet.calibrations.items():
        if not stored.holds_history(instrument_id, history):
            put_calibrations(act, instrument_id, history, reason)
    # A provider's client that is neither in this fleet nor registered before (a subset of a
    # fleet keeps its providers) is not a tenant yet: its contract waits for its registration.
    registered = set(act.connection.execute(select(tenants.c.tenant_id)).scalars())
    for contract in _contracts_of(fleet):
        if contract.provider in registered and contract.client in registered:
            put_contract(act, contract, reason)


def _contracts_of(fleet: Fleet) -> list[Contract]:
    """The fleet's contracts; a client named without one has a ``read`` contract with no end."""
    found = list(fleet.contracts)
    covered = {(c.provider, c.client) for c in found}
    for tenant in fleet.tenants.values():
        for client in tenant.clients:
            if (tenant.tenant_id, client) not in covered:
                found.append(Contract(tenant.tenant_id, client, ContractScope.READ))
    return found


class RegistryOperations:
    """Every registry operation, each one transaction (see the module docstring).

    ``transact`` runs work in a transaction of the store's database; ``clock`` gives the time
    of each operation (epoch seconds): when it happened, and which contracts are in force.
    """

    def __init__(self, transact: Transact, clock: Callable[[], float] = time.time) -> None:
        self._transact = transact
        self.clock = clock
        self._listeners: list[Callable[[], None]] = []

    def on_commit(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after each change this object commits (in this process).

        The running pipeline listens, so a change made through the API it serves applies to the
        next batch, not after its next poll of the change log.
        """
        self._listeners.append(listener)

    def _change(
        self, principal: Principal, what: str, work: Callable[[_Act], _T], *, fleet: bool = False
    ) -> _T:
        def run(connection: Connection) -> _T:
            audit.serialise(connection)
            at = self.clock()
            return work(_Act(connection, load_scope(connection, principal, at), at, fleet))

        result = self._transact(what, run, write=True)
        for listener in self._listeners:
            listener()
        return result

    def _read(self, what: str, work: Callable[[Connection], _T]) -> _T:
        return self._transact(what, work, write=False)

    # --- who ---

    def authenticate(self, token: str) -> Principal:
        """The principal of an API token; :class:`AuthenticationError` for an unknown, revoked
        or expired one (the same error for all three; the reason is logged)."""
        at = self.clock()
        return self._read("authenticate", lambda c: tokens.authenticate(c, token, at))

    def scope(self, principal: Principal, at: float | None = None) -> Scope:
        """What ``principal`` may do at ``at`` (now by default): pass it to every scoped read."""
        when = self.clock() if at is None else at
        return self._read("scope", lambda c: load_scope(c, principal, when))

    # --- tenants, sites, gateways ---

    def create_tenant(
        self, principal: Principal, document: CreateTenant | Document
    ) -> TenantRecord:
        """A new tenant; only the local principal creates tenants."""
        d = validated(CreateTenant, document)
        tenant = d.tenant()
        return self._change(principal, f"create tenant {d.id!r}",
                            lambda act: put_tenant(act, tenant, d.reason))  # fmt: skip

    def create_site(self, principal: Principal, document: CreateSite | Document) -> SiteRecord:
        d = validated(CreateSite, document)
        site = Site(d.tenant, d.id, d.name)
        return self._change(principal, f"create site {d.tenant}/{d.id}",
                            lambda act: put_site(act, site, d.reason))  # fmt: skip

    def register_gateway(
        self, principal: Principal, document: RegisterGateway | Document
    ) -> GatewayRecord:
        d = validated(RegisterGateway, document)
        gateway = Gateway(d.tenant, d.site, d.id, d.description)
        return self._change(principal, f"register gateway {d.tenant}/{d.site}/{d.id}",
                            lambda act: put_gateway(act, gateway, d.reason))  # fmt: skip

    # --- instruments ---

    def register_instrument(
        self, principal: Principal, document: RegisterInstrument | Document
    ) -> InstrumentRecord:
        """A new instrument at a registered site, on a registered gateway of that site."""
        d = validated(RegisterInstrument, document)

        def work(act: _Act) -> InstrumentRecord:
            tenant = _administered(act, d.tenant, f"register instrument {d.id!r}")
            policy = tenant.interval_policy
            spec = d.spec(
                d.tenant,
                d.site,
                default_rule=tenant.decision_rule,
                default_policy=None if policy is None else IntervalPolicyDocument(**policy),
            )
            return put_instrument(act, InstrumentRecord.from_spec(spec), d.reason)

        return self._change(principal, f"register instrument {d.id!r}", work)

    def change_instrument(
        self, principal: Principal, document: ChangeInstrument | Document
    ) -> InstrumentRecord:
        """Change a registered instrument's tolerance, interval policy, reference, site,
        gateway, decision rule, reporting period or description."""
        d = validated(ChangeInstrument, document)
        return self._change(principal, f"change instrument {d.instrument_id!r}",
                            lambda act: change_instrument(act, d))  # fmt: skip

    def retire_instrument(
        self, principal: Principal, document: RetireInstrument | Document
    ) -> InstrumentRecord:
        """Retire an instrument (never deleted: it keeps its history); a reason is required."""
        d = validated(RetireInstrument, document)
        return self._change(principal, f"retire instrument {d.instrument_id!r}",
                            lambda act: retire_instrument(act, d))  # fmt: skip

    # --- calibrations ---

    def record_calibration(
        self, principal: Principal, document: RecordCalibration | Document
    ) -> CalibrationRecord:
        """A new certificate (revision 0), in the instrument's unit (converted from the
        certificate's ``unit`` when it gives another)."""
        d = validated(RecordCalibration, document)

        def work(act: _Act) -> CalibrationRecord:
            instrument = _calibrated_instrument(
                act, d.instrument_id, f"record certificate {d.certificate!r}"
            )
            try:
                record = d.record(d.instrument_id, instrument.unit)
            except UnitError as exc:
                raise _invalid("unit", str(exc)) from exc
            except CalibrationError as exc:
                raise InvalidDocumentError(f"certificate {d.certificate!r}: {exc}") from exc
            return record_calibration(act, record, d.reason)

        return self._change(principal, f"record certificate {d.certificate!r}", work)

    def amend_calibration(
        self, principal: Principal, document: AmendCalibration | Document
    ) -> CalibrationRecord:
        """A new revision of a certificate, by the caller, now, with the reason given."""
        d = validated(AmendCalibration, document)
        return self._change(principal, f"amend certificate {d.certificate!r}",
                            lambda act: amend_calibration(act, d))  # fmt: skip

    # --- contracts ---

    def create_contract(
        self, principal: Principal, document: CreateContract | Document
    ) -> ContractRecord:
        """A provider-client contract; created by the client's admin (or the local principal)."""
        d = validated(CreateContract, document)
        contract = d.contract(d.provider)
        return self._change(principal, f"create contract {d.provider} -> {d.client}",
                            lambda act: put_contract(act, contract, d.reason))  # fmt: skip

    def end_contract(
        self, principal: Principal, document: EndContract | Document
    ) -> ContractRecord:
        """End a contract (the client's or the provider's admin); a reason is required."""
        d = validated(EndContract, document)
        return self._change(principal, f"end contract {d.contract_id}",
                            lambda act: end_contract(act, d))  # fmt: skip

    # --- tokens ---

    def create_token(self, principal: Principal, document: CreateToken | Document) -> IssuedToken:
        """A new API token; its string is in the result and nowhere else, ever."""
        d = validated(CreateToken, document)
        return self._change(principal, f"create token for {d.tenant!r}",
                            lambda act: create_token(act, d))  # fmt: skip

    def revoke_token(self, principal: Principal, document: RevokeToken | Document) -> TokenRecord:
        d = validated(RevokeToken, document)
        return self._change(principal, f"revoke token {d.token_id!r}",
                            lambda act: revoke_token(act, d))  # fmt: skip

    def list_tokens(self, scope: Scope, tenant: str | None = None) -> list[TokenRecord]:
        """Tokens of the tenants the scope administers (of ``tenant`` only, if given)."""
        return self._read("list tokens", lambda c: token_list(c, scope, tenant))

    # --- reads of the registry itself ---

    def instrument(self, scope: Scope, instrument_id: str) -> InstrumentRecord:
        """One registered instrument (retired ones too), if the scope reads its tenant; outside
        the scope refused as one that does not exist (:func:`scoped.missing`)."""
        return self._read(
            "instrument",
            lambda c: InstrumentRecord.from_row(scoped.visible_instrument(c, scope, instrument_id)),
        )

    def tenants(self, scope: Scope) -> list[TenantRecord]:
        return self._read("tenants", lambda c: scoped.tenant_list(c, scope))

    def sites(self, scope: Scope, tenant: str | None = None) -> list[SiteRecord]:
        return self._read("sites", lambda c: scoped.site_list(c, scope, tenant))

    def gateways(self, scope: Scope, tenant: str | None = None) -> list[GatewayRecord]:
        return self._read("gateways", lambda c: scoped.gateway_list(c, scope, tenant))

    def contracts(self, scope: Scope) -> list[ContractRecord]:
        return self._read("contracts", lambda c: scoped.contract_list(c, scope))

    def audit_trail(
        self,
        scope: Scope,
        *,
        tenant: str | None = None,
        start: float | None = None,
        end: float | None = None,
        limit: int = 100,
        after: Cursor | None = None,
    ) -> Page[AuditEntry]:
        """The audit trail of the tenants the scope reads, newest first, a page at a time."""
        scoped.readable_tenant(scope, tenant)
        return self._read(
            "audit trail",
            lambda c: audit.audit_trail(c, scope, tenant, start, end, limit, after),
        )

    def changes_since(self, seq: int = 0, limit: int = 1000) -> list[RegistryChange]:
        """The change log after sequence number ``seq``, oldest first (for the pipeline)."""
        check_limit(limit, 100_000)
        return self._read("changes since", lambda c: audit.changes_since(c, seq, limit))

    # --- a fleet file ---

    def register_fleet(self, fleet: Fleet, reason: str | None = None) -> int:
        """Register ``fleet`` as the local principal in one transaction; returns the number of
        changes made (0: the registry already held the fleet as it is)."""
        why = reason or f"fleet file {fleet.name!r}"

        def work(act: _Act) -> int:
            register_fleet(act, fleet, why)
            return act.changes

        return self._change(Principal.local(), f"register fleet {fleet.name!r}", work, fleet=True)
