"""The audit trail and the change log of the registry, written in each operation's transaction.

Every change a registry operation makes writes, in its own transaction:

- one ``registry_audit`` row: when, who (the principal's name, tenant, role and token id), the
  operation, the entity and its key, the entity before and after (JSON; ``null`` for a creation),
  and why (the reason given; required for amendments, retirements, contract ends and token
  revocations). ISO/IEC 17025:2017 §7.5.2: who changed a record, when and why stays retrievable.
- one ``registry_changes`` row: a sequence number, the time, the kind of entity, the operation,
  the tenant and the key, which the running pipeline reads with :func:`changes_since` to apply
  registry changes without a restart.

Both tables are append-only (triggers of migration 0002 refuse UPDATE and DELETE). Sequence
numbers grow in commit order: registry operations are serialised (SQLite's ``BEGIN IMMEDIATE``;
on PostgreSQL :func:`serialise` locks the change log for the transaction), so a reader that has
seen sequence number ``n`` never later finds a smaller one committed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, false, insert, or_, select

from metrology.tenancy import Principal, Scope
from storage.registry.pages import after_cursor, check_limit, page_of, time_range
from storage.registry.records import AuditEntry, Cursor, Page, RegistryChange
from storage.registry.tables import registry_audit, registry_changes
from storage.rows import to_json


def serialise(connection: Connection) -> None:
    """Make this transaction the only registry operation running until it ends.

    PostgreSQL: ``LOCK TABLE registry_changes IN EXCLUSIVE MODE`` waits for the operation that
    holds it to commit, and lets readers (``SELECT``) through. Registry operations are rare
    (people acting), so queuing them costs nothing and makes each one's checks (an overlapping
    certificate, a duplicate id) and its change-log sequence number race-free. SQLite's
    ``BEGIN IMMEDIATE`` does the same already.
    """
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("LOCK TABLE registry_changes IN EXCLUSIVE MODE")


# Built once: each execution binds its values (no statement to compile per change).
_AUDIT = insert(registry_audit)
_CHANGE = insert(registry_changes).returning(registry_changes.c.seq)


def _json(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else to_json(value)


def record(
    connection: Connection,
    principal: Principal,
    at: float,
    *,
    operation: str,
    entity: str,
    key: str,
    tenant: str | None,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    reason: str | None,
) -> int:
    """Write the audit row and the change-log row of one change; returns the sequence number."""
    connection.execute(
        _AUDIT,
        {
            "at": at,
            "principal": principal.name,
            "principal_tenant": principal.tenant,
            "role": principal.role.value,
            "token_id": principal.token_id,
            "operation": operation,
            "entity": entity,
            "entity_key": key,
            "tenant": tenant,
            "before": _json(before),
            "after": _json(after),
            "reason": reason,
        },
    )
    inserted = connection.execute(
        _CHANGE, {"at": at, "kind": entity, "operation": operation, "tenant": tenant, "key": key}
    )
    return int(inserted.scalar_one())


def audit_trail(
    connection: Connection,
    scope: Scope,
    tenant: str | None = None,
    start: float | None = None,
    end: float | None = None,
    limit: int = 100,
    after: Cursor | None = None,
) -> Page[AuditEntry]:
    """Audit rows of the tenants ``scope`` reads (of ``tenant`` only, if given), newest first.

    Token entries are shown only for tenants the scope administers. Rows without a tenant are
    seen by an unconfined scope only. ``[start, end)`` bounds the time; ``after`` is the cursor
    of the previous page (keyset pagination on (time, id): stable while rows are added).
    """
    check_limit(limit)
    a = registry_audit.c
    query = (
        select(registry_audit)
        .where(*time_range(a.at, start, end), after_cursor(a.at, a.id, after))
        .order_by(a.at.desc(), a.id.desc())
        .limit(limit + 1)
    )
    if not scope.unconfined:
        reads = sorted(scope.reads or ())
        administers = sorted(scope.administers or ())
        query = query.where(
            a.tenant.in_(reads) if reads else false(),
            or_(a.entity != "token", a.tenant.in_(administers) if administers else false()),
        )
    if tenant is not None:
        query = query.where(a.tenant == tenant)
    rows = connection.execute(query).all()
    return page_of(rows, limit, AuditEntry.from_row, lambda row: Cursor(row.at, row.id))


def changes_since(connection: Connection, seq: int, limit: int = 1000) -> list[RegistryChange]:
    """Changes with a sequence number above ``seq``, oldest first (at most ``limit``)."""
    check_limit(limit, 100_000)
    c = registry_changes.c
    query = select(registry_changes).where(c.seq > seq).order_by(c.seq).limit(limit)
    return [RegistryChange(**dict(row._mapping)) for row in connection.execute(query)]
