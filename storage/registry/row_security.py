"""Read-only database roles per tenant, confined by PostgreSQL's row-level security.

Grafana's PostgreSQL datasource (and any other tool given a tenant's login) reads the registry
with SQL the platform does not write, so confinement cannot live in calstream's queries: it is
the database's. :func:`sync_reader_roles` (``calstream grafana-roles``) sets up, in one
transaction and idempotently:

- a group role ``<prefix>_reader`` (NOLOGIN) with ``SELECT`` on the tenant-keyed tables only
  (:data:`POLICIES`); ``api_tokens``, ``broker_credentials``, ``reader_roles`` and
  ``alembic_version`` are not granted at all;
- one login role per tenant, ``<prefix>_tenant_<tenant>`` (:func:`reader_role_name`), member of
  the group, its password derived from a secret the operator keeps (:func:`reader_password`), and
  its tenant recorded in ``reader_roles``;
- row-level security on every granted table, with one ``SELECT`` policy each for the group:
  a row is visible when its tenant is one the *session's* login reads, which
  ``calstream_readable_tenants()`` computes at each query: the login's own tenant, and for a
  calibration provider each client whose contract is in force at the statement's time
  (``valid_from <= now() < valid_until``, as :meth:`metrology.tenancy.Contract.in_force_at`).
  A contract that ends takes effect at once, without running anything.

The policy keys on ``session_user`` (the login), read by ``SECURITY DEFINER`` functions owned
by the registry's owner: ``SET ROLE`` cannot change it, and the tenant roles are not members of
one another. Roles are not granted ``INSERT``, ``UPDATE``, ``DELETE`` or ``TRUNCATE``, and the
policies are ``FOR SELECT``: they cannot write. ``SET row_security = off`` makes their queries
fail instead of showing more. The registry's owner (the role calstream runs as, which created
the tables) is not subject to row-level security: the platform sees every tenant.

PostgreSQL roles belong to the whole server, not to one database: ``prefix`` (default
``calstream``) keeps two registries on one server apart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, delete, select

from storage.errors import ReaderRolesError
from storage.registry.tables import reader_roles

__all__ = [
    "POLICIES",
    "ReaderRoles",
    "group_role_name",
    "reader_password",
    "reader_role_name",
    "sync_reader_roles",
]

_MAX_IDENTIFIER = 63
"""PostgreSQL truncates longer identifiers (NAMEDATALEN - 1 bytes)."""

_READS = "IN (SELECT calstream_readable_tenants())"
_INSTRUMENT_READ = "instrument_id IN (SELECT instrument_id FROM instruments)"
_OWN = "calstream_own_tenant()"

POLICIES: dict[str, str] = {
    "tenants": f"tenant_id {_READS}",
    "sites": f"tenant {_READS}",
    "gateways": f"tenant {_READS}",
    "instruments": f"tenant {_READS}",
    "instrument_state": f"tenant {_READS}",
    "alerts": f"tenant {_READS}",
    "dead_letters": f"tenant {_READS}",
    "registry_changes": f"tenant {_READS}",
    # Token entries are the tenant admins' (Scope: tokens are seen where one administers).
    "registry_audit": f"tenant {_READS} AND entity <> 'token'",
    # Certificates through their instrument, itself confined by its own policy.
    "calibrations": _INSTRUMENT_READ,
    "calibration_curve_points": _INSTRUMENT_READ,
    # A provider reads its own contracts, a client the contracts naming it: never a client's
    # contracts with other providers.
    "contracts": f"provider = {_OWN} OR client = {_OWN}",
    "tenant_clients": f"provider = {_OWN} OR client = {_OWN}",
}
"""Each table the reader roles may read, and the rows they see of it."""

POLICY_NAME = "calstream_tenant_read"


def group_role_name(prefix: str) -> str:
    return f"{prefix}_reader"


def reader_role_name(prefix: str, tenant: str) -> str:
    """``<prefix>_tenant_<tenant>``; a name longer than PostgreSQL keeps is cut and given a
    digest of the tenant id, so two tenants never share a role."""
    name = f"{prefix}_tenant_{tenant}"
    if len(name.encode()) <= _MAX_IDENTIFIER:
        return name
    digest = hashlib.sha256(tenant.encode()).hexdigest()[:10]
    keep = _MAX_IDENTIFIER - len(digest) - 1
    return f"{name.encode()[:keep].decode(errors='ignore')}_{digest}"


def reader_password(secret: str, system: str, tenant: str) -> str:
    """The read-only password of ``tenant`` on ``system`` (``postgresql``, ``influxdb``):
    HMAC-SHA256 of the two under ``secret``, 43 URL-safe characters.

    Derived, not stored: the command that creates the roles and the one that writes Grafana's
    datasources compute the same password from the same secret, and nothing else keeps it.
    Changing the secret changes every password (run both commands again).
    """
    if not secret:
        raise ReaderRolesError("the readers' secret is empty (CALSTREAM_READER_SECRET)")
    mac = hmac.new(secret.encode(), f"{system}\0{tenant}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class ReaderRoles:
    """What :func:`sync_reader_roles` set up: the group and each tenant's login role."""

    group: str
    roles: dict[str, str]
    """tenant -> login role."""
    created: tuple[str, ...]
    """Login roles that did not exist before."""


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _functions(schema: str) -> list[str]:
    path = f"SET search_path = {schema}, pg_temp"
    return [
        f"CREATE OR REPLACE FUNCTION calstream_own_tenant() RETURNS text LANGUAGE sql STABLE "
        f"SECURITY DEFINER {path} AS $$ "
        "SELECT tenant FROM reader_roles WHERE role_name = session_user $$",
        f"CREATE OR REPLACE FUNCTION calstream_readable_tenants() RETURNS SETOF text "
        f"LANGUAGE sql STABLE SECURITY DEFINER {path} AS $$ "
        "SELECT tenant FROM reader_roles WHERE role_name = session_user "
        "UNION "
        "SELECT c.client FROM contracts AS c JOIN reader_roles AS r ON r.tenant = c.provider "
        "WHERE r.role_name = session_user "
        "AND (c.valid_from IS NULL OR c.valid_from <= extract(epoch FROM now())) "
        "AND (c.valid_until IS NULL OR extract(epoch FROM now()) < c.valid_until) $$",
    ]


def sync_reader_roles(
    connection: Connection,
    tenants: Iterable[str],
    password_of: Callable[[str], str],
    prefix: str = "calstream",
) -> ReaderRoles:
    """Create or update the group, one login role per tenant (password ``password_of(tenant)``),
    the grants, the functions and the policies (see the module docstring), in the caller's
    transaction. :class:`ReaderRolesError` on a registry that is not PostgreSQL, or when two
    tenants would share a role name."""
    if connection.dialect.name != "postgresql":
        raise ReaderRolesError(
            "row-level security needs the registry on PostgreSQL (CALSTREAM_REGISTRY="
            "postgresql://...); an SQLite registry has no users: confine tenants through the API"
        )
    quote = connection.dialect.identifier_preparer.quote_identifier
    run = connection.exec_driver_sql
    # One sync at a time per server (roles are the server's): a second waits.
    run("SELECT pg_advisory_xact_lock(hashtext('calstream reader roles'))")
    group = group_role_name(prefix)
    roles = {tenant: reader_role_name(prefix, tenant) for tenant in sorted(set(tenants))}
    if len(set(roles.values())) != len(roles):
        raise ReaderRolesError("two tenants map to one role name: choose another prefix")
    existing = set(run("SELECT rolname FROM pg_roles").scalars())
    if group in roles.values():
        raise ReaderRolesError(f"a tenant's role would be the group {group!r}")
    if group not in existing:
        run(f"CREATE ROLE {quote(group)} NOLOGIN")
    created = []
    for tenant, role in roles.items():
        verb = "ALTER" if role in existing else "CREATE"
        if verb == "CREATE":
            created.append(role)
        run(
            f"{verb} ROLE {quote(role)} LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE "
            f"NOREPLICATION NOBYPASSRLS PASSWORD {_literal(password_of(tenant))}"
        )
        run(f"GRANT {quote(group)} TO {quote(role)}")
    connection.execute(delete(reader_roles).where(reader_roles.c.tenant.in_(list(roles))))
    stale = connection.execute(
        select(reader_roles.c.role_name).where(reader_roles.c.role_name.in_(list(roles.values())))
    ).first()
    if stale is not None:
        raise ReaderRolesError(f"role {stale.role_name!r} is recorded for another tenant")
    if roles:
        connection.execute(
            reader_roles.insert(), [{"role_name": r, "tenant": t} for t, r in roles.items()]
        )
    schema = quote(str(run("SELECT current_schema()").scalar_one()))
    for statement in _functions(schema):
        run(statement)
    run(f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {quote(group)}")
    run(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {quote(group)}")
    run(f"GRANT USAGE ON SCHEMA {schema} TO {quote(group)}")
    for table, condition in POLICIES.items():
        run(f"ALTER TABLE {quote(table)} ENABLE ROW LEVEL SECURITY")
        run(f"DROP POLICY IF EXISTS {POLICY_NAME} ON {quote(table)}")
        run(
            f"CREATE POLICY {POLICY_NAME} ON {quote(table)} AS PERMISSIVE FOR SELECT "
            f"TO {quote(group)} USING ({condition})"
        )
        run(f"GRANT SELECT ON {quote(table)} TO {quote(group)}")
    return ReaderRoles(group, roles, tuple(created))
