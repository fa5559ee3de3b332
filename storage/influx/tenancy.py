"""Read-only InfluxDB 1.x users per tenant, over the databases of a ``per_tenant`` store.

A store URL with ``per_tenant=true`` writes each tenant's points to a database of their own,
``<database>_<tenant>`` (:meth:`~storage.influx.target.InfluxTarget.database_of`). InfluxDB 1.x
grants privileges per database (``READ``, ``WRITE``, ``ALL``), never per series, so a tenant's
user granted ``READ`` on its own database alone reads its own points alone, whatever InfluxQL it
sends: a query naming another database (``FROM "other".."health"``) is refused with *not
authorized*, and so is every write, ``SELECT ... INTO``, ``DROP`` and ``SHOW USERS``.

:func:`sync_readers` (``calstream grafana-roles``) makes the server's users and grants what the
registry says now, with the store URL's admin credentials:

- every tenant's database exists (``CREATE DATABASE`` is idempotent), so grants and Grafana's
  datasources work before the first point arrives;
- one user per tenant, ``<prefix>_<tenant>`` (:func:`reader_user`), not an admin, its password
  the one given (derived from the operator's secret:
  :func:`storage.registry.row_security.reader_password`);
- ``READ`` on the databases of the tenants it reads (its own; for a calibration provider, each
  client under a contract in force) and nothing on any other: a grant no longer wanted (a
  contract that ended) is revoked.

Unlike PostgreSQL's policies, InfluxDB cannot look at a contract's dates while answering: a
contract that ends is revoked at the next :func:`sync_readers`. Run it on a timer and after
every contract change (docs/deploy.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from storage.errors import ReaderRolesError
from storage.influx.target import InfluxTarget

__all__ = ["InfluxReaders", "reader_user", "sync_readers"]

READ = "READ"


def reader_user(prefix: str, tenant: str) -> str:
    """The read-only InfluxDB user of ``tenant``: ``<prefix>_<tenant>``."""
    return f"{prefix}_{tenant}"


def _identifier(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True, slots=True)
class InfluxReaders:
    """What :func:`sync_readers` left on the server: each tenant's user and the databases it
    may read."""

    users: dict[str, str]
    """tenant -> user."""
    reads: dict[str, tuple[str, ...]]
    """tenant -> databases its user may read, sorted."""
    created: tuple[str, ...]
    revoked: tuple[tuple[str, str], ...]
    """(user, database) grants taken back."""


class _Admin:
    """InfluxQL statements as the store URL's admin user (POST /query)."""

    def __init__(self, target: InfluxTarget) -> None:
        auth = None
        if target.username is not None:
            auth = httpx.BasicAuth(target.username, target.password or "")
        self._target = target
        self._client = httpx.Client(
            base_url=target.base_url, auth=auth, timeout=target.policy.timeout_s
        )

    def run(self, statement: str) -> list[dict[str, Any]]:
        try:
            response = self._client.post("/query", data={"q": statement})
        except httpx.TransportError as exc:
            raise ReaderRolesError(
                f"InfluxDB at {self._target.redacted_url} cannot be reached: {exc}"
            ) from exc
        shown = statement.split(" WITH PASSWORD ")[0].split(" = ")[0]  # never the password
        if response.status_code != 200:
            raise ReaderRolesError(
                f"InfluxDB at {self._target.redacted_url} refused {shown!r}: HTTP "
                f"{response.status_code}: {response.text.strip()[:300]} (the store URL's user "
                "must be an InfluxDB admin)"
            )
        result = (response.json().get("results") or [{}])[0]
        if result.get("error"):
            raise ReaderRolesError(f"InfluxDB refused {shown!r}: {result['error']}")
        return list(result.get("series") or [])

    def close(self) -> None:
        self._client.close()


def sync_readers(
    target: InfluxTarget,
    reads: Mapping[str, set[str] | frozenset[str]],
    password_of: Callable[[str], str],
    prefix: str = "calstream_reader",
) -> InfluxReaders:
    """Make the users and grants match ``reads`` (tenant -> tenants its user reads; every
    tenant named must be a key); see the module docstring."""
    if not target.per_tenant:
        raise ReaderRolesError(
            "per-tenant InfluxDB users need a store with one database per tenant: add "
            "per_tenant=true to the influxdb:// store URL"
        )
    admin = _Admin(target)
    try:
        return _sync(admin, target, reads, password_of, prefix)
    finally:
        admin.close()


def _sync(
    admin: _Admin,
    target: InfluxTarget,
    reads: Mapping[str, set[str] | frozenset[str]],
    password_of: Callable[[str], str],
    prefix: str,
) -> InfluxReaders:
    for tenant in sorted(reads):
        admin.run(f"CREATE DATABASE {_identifier(target.database_of(tenant))}")
    existing = {
        row[0]: bool(row[1]) for s in admin.run("SHOW USERS") for row in s.get("values") or []
    }
    users, wanted_reads, created, revoked = {}, {}, [], []
    for tenant in sorted(reads):
        user = reader_user(prefix, tenant)
        users[tenant] = user
        password = _string(password_of(tenant))
        if user in existing:
            admin.run(f"SET PASSWORD FOR {_identifier(user)} = {password}")
            if existing[user]:  # an admin reads everything: never for a tenant's user
                admin.run(f"REVOKE ALL PRIVILEGES FROM {_identifier(user)}")
        else:
            admin.run(f"CREATE USER {_identifier(user)} WITH PASSWORD {password}")
            created.append(user)
        wanted = {target.database_of(t) for t in reads[tenant]}
        granted = {
            row[0]: row[1]
            for s in admin.run(f"SHOW GRANTS FOR {_identifier(user)}")
            for row in s.get("values") or []
        }
        for database, privilege in sorted(granted.items()):
            if privilege == "NO PRIVILEGES":
                continue
            if database not in wanted or privilege != READ:
                admin.run(f"REVOKE ALL ON {_identifier(database)} FROM {_identifier(user)}")
                revoked.append((user, database))
        for database in sorted(wanted):
            if granted.get(database) != READ:
                admin.run(f"GRANT READ ON {_identifier(database)} TO {_identifier(user)}")
        wanted_reads[tenant] = tuple(sorted(wanted))
    return InfluxReaders(users, wanted_reads, tuple(created), tuple(revoked))
