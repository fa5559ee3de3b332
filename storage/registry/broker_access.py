"""Who logs in to the MQTT broker: credentials kept in the registry, and the operations on them.

Two kinds of broker users come from the registry (calstream's own components, the pipeline and
the forwarders, are configured beside it: :mod:`storage.registry.broker_files`):

- a **gateway**, user ``<tenant>-<site>-<gateway>`` (:func:`gateway_username`): it writes its
  own readings topic and reads its tenant's alerts;
- a calibration provider's **alert reader**, user ``provider-<tenant>``
  (:func:`provider_username`): it reads the alerts of the clients it serves under a contract in
  force.

**Passwords are issued, never chosen**: :meth:`BrokerAccess.issue_gateway_credentials` (and
:meth:`~BrokerAccess.issue_provider_credentials`) draws 32 random bytes
(:func:`secrets.token_urlsafe`, 256 bits), returns the password once, and keeps only its hash in
``broker_credentials``, in mosquitto's own PBKDF2-SHA512 format (``$7$<iterations>$<salt>$<key>``,
base64 salt of 12 bytes, 64-byte key: :func:`mosquitto_hash`, what ``mosquitto_passwd`` 2.x
writes). The password file is then the registry's hashes copied as they are, so exporting it
twice gives the same file. Issuing again replaces the hash: the old password works until the
next export is loaded by the broker. Like API tokens (:mod:`storage.registry.tokens`), a
256-bit random password needs no slow hash against guessing; the 101 iterations of
``mosquitto_passwd`` keep the broker's cost per login low.

Issuing credentials and retiring a gateway are registry operations: one serialised transaction
of :class:`~storage.registry.operations.RegistryOperations`, the caller's scope checked (a
tenant's admin, or the local principal), one audit row and one change-log row each. The audit
rows name the user, never the hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, func, select, update

from metrology.fleet import Identifier, TenantKind, Text
from metrology.tenancy import Principal
from metrology.timebase import iso
from storage.errors import ConflictError, NotFoundError
from storage.registry.documents import validated
from storage.registry.operations import Document, RegistryOperations, _Act, _administered
from storage.registry.records import ContractRecord, GatewayRecord
from storage.registry.tables import (
    broker_credentials,
    contracts,
    gateways,
    instruments,
    tenants,
)

__all__ = [
    "MOSQUITTO_ITERATIONS",
    "BrokerAccess",
    "BrokerAccounts",
    "GatewayLogin",
    "IssueGatewayCredentials",
    "IssueProviderCredentials",
    "IssuedCredentials",
    "ProviderLogin",
    "RetireGateway",
    "gateway_username",
    "mosquitto_hash",
    "mosquitto_verify",
    "provider_username",
]

_T = TypeVar("_T")

MOSQUITTO_ITERATIONS = 101
"""PBKDF2 iterations ``mosquitto_passwd`` 2.0 writes."""
_SALT_BYTES = 12
_KEY_BYTES = 64
_PASSWORD_BYTES = 32

GATEWAY = "gateway"
PROVIDER = "provider"


# --- mosquitto's password hash ---


def mosquitto_hash(
    password: str, *, salt: bytes | None = None, iterations: int = MOSQUITTO_ITERATIONS
) -> str:
    """``password`` as mosquitto's ``$7$`` PBKDF2-SHA512 hash (a random salt unless given)."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, _KEY_BYTES)
    encoded_salt = base64.b64encode(salt).decode()
    return f"$7${iterations}${encoded_salt}${base64.b64encode(key).decode()}"


def mosquitto_verify(password: str, encoded: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash (one written by ``mosquitto_passwd`` too)."""
    try:
        _, kind, iterations, salt, key = encoded.split("$")
        if kind != "7":
            return False
        expected = base64.b64decode(key, validate=True)
        computed = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), base64.b64decode(salt, validate=True), int(iterations),
            len(expected),
        )  # fmt: skip
    except ValueError:
        return False
    return hmac.compare_digest(computed, expected)


# --- user names ---


def gateway_username(tenant: str, site: str, gateway: str) -> str:
    """The broker user of a gateway: ``<tenant>-<site>-<gateway>``, as its topic names it."""
    return f"{tenant}-{site}-{gateway}"


def provider_username(tenant: str) -> str:
    """The broker user of a calibration provider's alert reader: ``provider-<tenant>``."""
    return f"provider-{tenant}"


# --- documents ---

_STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class IssueGatewayCredentials(BaseModel):
    """New broker credentials for a registered gateway (replacing any it had)."""

    model_config = _STRICT
    tenant: Identifier
    site: Identifier
    gateway: Identifier
    reason: Text | None = None


class IssueProviderCredentials(BaseModel):
    """New broker credentials for a calibration provider's alert reader."""

    model_config = _STRICT
    tenant: Identifier
    reason: Text | None = None


class RetireGateway(BaseModel):
    """Retire a gateway: it keeps its record and loses its broker login at the next export."""

    model_config = _STRICT
    tenant: Identifier
    site: Identifier
    gateway: Identifier
    reason: Text


# --- results ---


@dataclass(frozen=True, slots=True)
class IssuedCredentials:
    """A new login: ``password`` is shown here once and stored nowhere."""

    username: str
    password: str = field(repr=False)
    issued_at: float


@dataclass(frozen=True, slots=True)
class GatewayLogin:
    """A gateway that may log in: registered, not retired, with credentials."""

    username: str
    tenant: str
    site: str
    gateway: str
    password_hash: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ProviderLogin:
    """A provider's alert reader, with the clients it serves under a contract in force."""

    username: str
    tenant: str
    clients: tuple[str, ...]
    password_hash: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class BrokerAccounts:
    """The broker users the registry gives at ``at``, each list sorted by user name."""

    at: float
    gateways: tuple[GatewayLogin, ...]
    providers: tuple[ProviderLogin, ...]
    gateways_without_credentials: tuple[str, ...]
    """``tenant/site/gateway`` of registered, not retired gateways that have no login yet."""
    providers_without_credentials: tuple[str, ...]


# --- the operations ---


def _credential_row(row: Any) -> dict[str, Any]:
    """A credentials row (a mapping or a result row) as the audit trail shows it: no hash."""
    found = dict(getattr(row, "_mapping", row))
    found.pop("password_hash", None)
    return found


def _put_credentials(
    act: _Act, username: str, kind: str, tenant: str, site: str | None, gateway: str | None,
    reason: str | None,
) -> IssuedCredentials:  # fmt: skip
    c = broker_credentials.c
    held = act.connection.execute(select(broker_credentials).where(c.username == username)).first()
    if held is not None and (held.kind, held.tenant, held.site, held.gateway_id) != (
        kind, tenant, site, gateway,
    ):  # fmt: skip
        owner = "/".join(p for p in (held.tenant, held.site, held.gateway_id) if p)
        raise ConflictError(
            f"broker user {username!r} is already the login of {held.kind} {owner}: user names "
            "are <tenant>-<site>-<gateway> and provider-<tenant>, so these two ids collide; "
            "register the gateway under another id"
        )
    password = secrets.token_urlsafe(_PASSWORD_BYTES)
    row = {
        "username": username, "kind": kind, "tenant": tenant, "site": site,
        "gateway_id": gateway, "password_hash": mosquitto_hash(password),
        "issued_at": act.at, "issued_by": act.principal.name,
    }  # fmt: skip
    if held is None:
        act.connection.execute(broker_credentials.insert(), row)
    else:
        act.connection.execute(update(broker_credentials).where(c.username == username).values(row))
    act.audit(
        "issue_broker_credentials", "broker_login", username, tenant,
        None if held is None else _credential_row(held), _credential_row(row), reason,
    )  # fmt: skip
    return IssuedCredentials(username, password, act.at)


def _gateway(act: _Act, tenant: str, site: str, gateway: str) -> GatewayRecord:
    g = gateways.c
    row = act.connection.execute(
        select(gateways).where(g.tenant == tenant, g.site == site, g.gateway_id == gateway)
    ).first()
    if row is None:
        raise NotFoundError(f"gateway: {tenant}/{site}/{gateway} is not registered")
    return GatewayRecord(**dict(row._mapping))


def issue_gateway_credentials(act: _Act, d: IssueGatewayCredentials) -> IssuedCredentials:
    key = f"{d.tenant}/{d.site}/{d.gateway}"
    _administered(act, d.tenant, f"issue broker credentials for gateway {key}")
    record = _gateway(act, d.tenant, d.site, d.gateway)
    if record.retired_at is not None:
        raise ConflictError(f"gateway {key} was retired at {iso(record.retired_at)}")
    username = gateway_username(d.tenant, d.site, d.gateway)
    return _put_credentials(act, username, GATEWAY, d.tenant, d.site, d.gateway, d.reason)


def issue_provider_credentials(act: _Act, d: IssueProviderCredentials) -> IssuedCredentials:
    tenant = _administered(act, d.tenant, "issue broker credentials for the alert reader")
    if tenant.tenant_kind is not TenantKind.CALIBRATION_PROVIDER:
        raise ConflictError(
            f"tenant {d.tenant!r} is a {tenant.kind}, not a calibration provider: its gateways "
            "get credentials of their own (calstream gateways credentials)"
        )
    username = provider_username(d.tenant)
    return _put_credentials(act, username, PROVIDER, d.tenant, None, None, d.reason)


def retire_gateway(act: _Act, d: RetireGateway) -> GatewayRecord:
    key = f"{d.tenant}/{d.site}/{d.gateway}"
    _administered(act, d.tenant, f"retire gateway {key}")
    old = _gateway(act, d.tenant, d.site, d.gateway)
    if old.retired_at is not None:
        raise ConflictError(f"gateway {key} was retired at {iso(old.retired_at)}")
    i = instruments.c
    active = act.connection.execute(
        select(func.count()).where(
            i.tenant == d.tenant, i.site == d.site, i.gateway == d.gateway, i.retired_at.is_(None)
        )
    ).scalar_one()
    if active:
        raise ConflictError(
            f"gateway {key} still carries {active} instrument(s) in service: move them to "
            "another gateway or retire them first"
        )
    g = gateways.c
    act.connection.execute(
        update(gateways)
        .where(g.tenant == d.tenant, g.site == d.site, g.gateway_id == d.gateway)
        .values(retired_at=act.at)
    )
    new = GatewayRecord(old.tenant, old.site, old.gateway_id, old.description, old.created_at,
                        act.at)  # fmt: skip
    act.audit("retire_gateway", "gateway", key, d.tenant, asdict(old), asdict(new), d.reason)
    return new


def broker_accounts(connection: Connection, at: float) -> BrokerAccounts:
    """The gateways and provider readers that may log in at ``at``, and those without a login."""
    logins = {r.username: r for r in connection.execute(select(broker_credentials))}
    by_gateway = {(r.tenant, r.site, r.gateway_id): r for r in logins.values() if r.kind == GATEWAY}
    by_provider = {r.tenant: r for r in logins.values() if r.kind == PROVIDER}
    in_service: list[GatewayLogin] = []
    missing: list[str] = []
    for g in connection.execute(select(gateways).where(gateways.c.retired_at.is_(None))):
        login = by_gateway.get((g.tenant, g.site, g.gateway_id))
        if login is None:
            missing.append(f"{g.tenant}/{g.site}/{g.gateway_id}")
        else:
            in_service.append(
                GatewayLogin(login.username, g.tenant, g.site, g.gateway_id, login.password_hash)
            )
    clients: dict[str, set[str]] = {}
    for row in connection.execute(select(contracts)):
        contract = ContractRecord.from_row(row).contract
        if contract.in_force_at(at):
            clients.setdefault(contract.provider, set()).add(contract.client)
    providers: list[ProviderLogin] = []
    providers_missing: list[str] = []
    kind = TenantKind.CALIBRATION_PROVIDER.value
    for t in connection.execute(select(tenants.c.tenant_id).where(tenants.c.kind == kind)):
        login = by_provider.get(t.tenant_id)
        if login is None:
            providers_missing.append(t.tenant_id)
        else:
            served = tuple(sorted(clients.get(t.tenant_id, ())))
            providers.append(
                ProviderLogin(login.username, t.tenant_id, served, login.password_hash)
            )
    return BrokerAccounts(
        at,
        tuple(sorted(in_service, key=lambda x: x.username)),
        tuple(sorted(providers, key=lambda x: x.username)),
        tuple(sorted(missing)),
        tuple(sorted(providers_missing)),
    )


class BrokerAccess:
    """The broker-credential operations on a registry, through its
    :class:`~storage.registry.operations.RegistryOperations` (same transactions, clock and
    audit trail)::

        access = BrokerAccess(store.operations)
        issued = access.issue_gateway_credentials(principal, {"tenant": "acme", ...})
        accounts = access.accounts()  # what `calstream broker-auth export` writes
    """

    def __init__(self, operations: RegistryOperations) -> None:
        self._operations = operations

    def _change(self, principal: Principal, what: str, work: Callable[[_Act], _T]) -> _T:
        return self._operations._change(principal, what, work)

    def issue_gateway_credentials(
        self, principal: Principal, document: IssueGatewayCredentials | Document
    ) -> IssuedCredentials:
        """A new password for a registered gateway in service; shown once in the result."""
        d = validated(IssueGatewayCredentials, document)
        return self._change(
            principal,
            f"issue broker credentials for {d.tenant}/{d.site}/{d.gateway}",
            lambda act: issue_gateway_credentials(act, d),
        )

    def issue_provider_credentials(
        self, principal: Principal, document: IssueProviderCredentials | Document
    ) -> IssuedCredentials:
        """A new password for a calibration provider's alert reader; shown once."""
        d = validated(IssueProviderCredentials, document)
        return self._change(
            principal,
            f"issue broker credentials for provider {d.tenant}",
            lambda act: issue_provider_credentials(act, d),
        )

    def retire_gateway(
        self, principal: Principal, document: RetireGateway | Document
    ) -> GatewayRecord:
        """Retire a gateway that carries no instrument in service; a reason is required."""
        d = validated(RetireGateway, document)
        return self._change(
            principal,
            f"retire gateway {d.tenant}/{d.site}/{d.gateway}",
            lambda act: retire_gateway(act, d),
        )

    def accounts(self, at: float | None = None) -> BrokerAccounts:
        """Who may log in at ``at`` (the operations' clock by default): for the export."""
        when = self._operations.clock() if at is None else at
        return self._operations._read("broker accounts", lambda c: broker_accounts(c, when))
