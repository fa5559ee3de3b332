"""The reads the API serves, each confined to the caller's :class:`~metrology.tenancy.Scope`.

Confinement is in SQL: every query filters on the tenants the scope reads, so a row of another
tenant is never fetched. An object named by its id (an instrument) that is outside the scope is
refused with :class:`PermissionDeniedError` and the same message as an id that does not exist
(:func:`missing`): the answer does not tell whether another tenant has it. Only an unconfined
scope (the local principal) is told :class:`NotFoundError`.

Written once in SQLAlchemy Core; the embedded store runs them on its own connection,
:class:`~storage.registry.SqlRegistry` on SQLite or PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, or_, select

from metrology.assessment import HealthSnapshot, StatusChange
from metrology.calibration import CalibrationHistory
from metrology.tenancy import Scope
from metrology.wire import DeadLetter
from storage.errors import NotFoundError, PermissionDeniedError, RegistryError
from storage.registry import queries
from storage.registry.pages import after_cursor, check_limit, page_of, time_range
from storage.registry.records import (
    ContractRecord,
    Cursor,
    DueEntry,
    GatewayRecord,
    InstrumentRecord,
    Page,
    SiteRecord,
    TenantRecord,
)
from storage.registry.tables import (
    alerts,
    calibrations,
    contracts,
    dead_letters,
    gateways,
    instrument_state,
    instruments,
    sites,
    tenants,
)
from storage.rows import (
    ALERT_COLUMNS,
    DEAD_LETTER_COLUMNS,
    change_from_row,
    dead_letter_from_row,
    snapshot_from_row,
)


@dataclass(frozen=True, slots=True)
class FleetHealth:
    """Instruments by status (every status key, zeros included) and the worst of them."""

    counts: dict[str, int]
    worst: list[HealthSnapshot]

    @property
    def instruments(self) -> int:
        return sum(self.counts.values())


def denied(scope: Scope, entity: str, key: str) -> PermissionDeniedError:
    """The refusal of an object outside the scope, worded alike whether it exists or not."""
    return PermissionDeniedError(
        f"{entity} {key!r} is not in the scope of {scope.principal.name!r}"
    )


def missing(scope: Scope, entity: str, key: str) -> RegistryError:
    """An object that is not there: :class:`NotFoundError` for an unconfined scope, else the
    same refusal as an object outside the scope (:func:`denied`)."""
    if scope.unconfined:
        return NotFoundError(f"{entity} {key!r} is not registered")
    return denied(scope, entity, key)


def readable_tenant(scope: Scope, tenant: str | None) -> str | None:
    """``tenant`` if the scope reads it (None: no narrowing); else the refusal."""
    if tenant is not None and not scope.may_read(tenant):
        raise denied(scope, "tenant", tenant)
    return tenant


def visible_instrument(connection: Connection, scope: Scope, instrument_id: str) -> Any:
    """The ``instruments`` row of ``instrument_id``, if the scope reads its tenant."""
    row = connection.execute(
        select(instruments).where(instruments.c.instrument_id == instrument_id)
    ).first()
    if row is None or not scope.may_read(row.tenant):
        raise missing(scope, "instrument", instrument_id)
    return row


def fleet_health(
    connection: Connection, scope: Scope, worst: int = 10, tenant: str | None = None
) -> FleetHealth:
    """Counts by status over the instruments the scope reads, and the ``worst`` most severe."""
    check_limit(worst)
    readable_tenant(scope, tenant)
    return FleetHealth(
        queries.counts_by_status(connection, tenant, scope.reads),
        queries.worst_instruments(connection, worst, tenant, scope.reads),
    )


def instrument_health(
    connection: Connection, scope: Scope, instrument_id: str
) -> HealthSnapshot | None:
    """The latest health of the instrument, with the numbers behind it (None: no data yet)."""
    visible_instrument(connection, scope, instrument_id)
    row = connection.execute(
        select(*queries.SNAPSHOT_COLUMNS).where(instrument_state.c.instrument_id == instrument_id)
    ).first()
    return None if row is None else snapshot_from_row(tuple(row))


def status_history(
    connection: Connection,
    scope: Scope,
    *,
    instrument_id: str | None = None,
    tenant: str | None = None,
    start: float | None = None,
    end: float | None = None,
    limit: int = 100,
    after: Cursor | None = None,
) -> Page[StatusChange]:
    """Status changes (the alerts' history) in ``[start, end)``, newest first, a page at a time."""
    check_limit(limit)
    readable_tenant(scope, tenant)
    if instrument_id is not None:
        visible_instrument(connection, scope, instrument_id)
    a = alerts.c
    query = (
        select(a.ts, a.id, *(a[c] for c in ALERT_COLUMNS))
        .where(
            queries.in_tenants(a.tenant, tenant, scope.reads),
            *time_range(a.ts, start, end),
            after_cursor(a.ts, a.id, after),
        )
        .order_by(a.ts.desc(), a.id.desc())
        .limit(limit + 1)
    )
    if instrument_id is not None:
        query = query.where(a.instrument_id == instrument_id)
    rows = connection.execute(query).all()
    return page_of(
        rows, limit, lambda row: change_from_row(tuple(row)[2:]), lambda row: Cursor(row[0], row[1])
    )


def dead_letter_page(
    connection: Connection,
    scope: Scope,
    *,
    tenant: str | None = None,
    start: float | None = None,
    end: float | None = None,
    limit: int = 100,
    after: Cursor | None = None,
) -> Page[DeadLetter]:
    """Dead letters received in ``[start, end)``, newest first, a page at a time.

    A dead letter whose tenant is unknown (a topic that names none) is seen by an unconfined
    scope only.
    """
    check_limit(limit)
    readable_tenant(scope, tenant)
    d = dead_letters.c
    query = (
        select(d.received_at, d.id, *(d[c] for c in DEAD_LETTER_COLUMNS))
        .where(
            queries.in_tenants(d.tenant, tenant, scope.reads),
            *time_range(d.received_at, start, end),
            after_cursor(d.received_at, d.id, after),
        )
        .order_by(d.received_at.desc(), d.id.desc())
        .limit(limit + 1)
    )
    rows = connection.execute(query).all()
    return page_of(
        rows,
        limit,
        lambda row: dead_letter_from_row(tuple(row)[2:]),
        lambda row: Cursor(row[0], row[1]),
    )


def due_list(
    connection: Connection,
    scope: Scope,
    *,
    tenant: str | None = None,
    due_before: float | None = None,
    limit: int = 100,
) -> list[DueEntry]:
    """Instruments (not retired) by calibration due date, soonest first.

    The due date is the one of the certificate in force with the latest calibration date (its
    newest revision). Instruments never calibrated come first (``due_at`` None). With
    ``due_before``, only those due before it (and the never calibrated).
    """
    check_limit(limit)
    readable_tenant(scope, tenant)
    latest = (
        select(calibrations.c.instrument_id, func.max(calibrations.c.calibrated_at).label("at"))
        .where(calibrations.c.in_force)
        .group_by(calibrations.c.instrument_id)
        .subquery("latest")
    )
    current = (
        select(calibrations)
        .join(
            latest,
            (latest.c.instrument_id == calibrations.c.instrument_id)
            & (latest.c.at == calibrations.c.calibrated_at),
        )
        .where(calibrations.c.in_force)
        .subquery("current")
    )
    i = instruments.c
    query = (
        select(
            i.instrument_id,
            i.tenant,
            i.site,
            current.c.certificate_id,
            current.c.revision,
            current.c.calibrated_at,
            current.c.due_at,
        )
        .select_from(instruments)
        .outerjoin(current, current.c.instrument_id == i.instrument_id)
        .where(i.retired_at.is_(None), queries.in_tenants(i.tenant, tenant, scope.reads))
        .order_by(current.c.due_at.asc().nulls_first(), i.instrument_id)
        .limit(limit)
    )
    if due_before is not None:
        query = query.where(or_(current.c.due_at.is_(None), current.c.due_at < due_before))
    return [DueEntry(*row) for row in connection.execute(query)]


def instrument_list(
    connection: Connection,
    scope: Scope,
    *,
    tenant: str | None = None,
    include_retired: bool = False,
) -> list[InstrumentRecord]:
    """Registered instruments the scope reads, by tenant, site and id."""
    readable_tenant(scope, tenant)
    i = instruments.c
    query = (
        select(instruments)
        .where(queries.in_tenants(i.tenant, tenant, scope.reads))
        .order_by(i.tenant, i.site, i.instrument_id)
    )
    if not include_retired:
        query = query.where(i.retired_at.is_(None))
    return [InstrumentRecord.from_row(row) for row in connection.execute(query)]


def calibration_history(
    connection: Connection, scope: Scope, instrument_id: str
) -> CalibrationHistory:
    """Every revision of every certificate of the instrument (its audit trail, curves)."""
    visible_instrument(connection, scope, instrument_id)
    return queries.calibration_history(connection, instrument_id)


def tenant_list(connection: Connection, scope: Scope) -> list[TenantRecord]:
    query = (
        select(tenants)
        .where(queries.in_tenants(tenants.c.tenant_id, None, scope.reads))
        .order_by(tenants.c.tenant_id)
    )
    return [TenantRecord.from_row(row) for row in connection.execute(query)]


def site_list(connection: Connection, scope: Scope, tenant: str | None = None) -> list[SiteRecord]:
    readable_tenant(scope, tenant)
    query = (
        select(sites)
        .where(queries.in_tenants(sites.c.tenant, tenant, scope.reads))
        .order_by(sites.c.tenant, sites.c.site_id)
    )
    return [SiteRecord(*row) for row in connection.execute(query)]


def gateway_list(
    connection: Connection, scope: Scope, tenant: str | None = None
) -> list[GatewayRecord]:
    readable_tenant(scope, tenant)
    g = gateways.c
    query = (
        select(gateways)
        .where(queries.in_tenants(g.tenant, tenant, scope.reads))
        .order_by(g.tenant, g.site, g.gateway_id)
    )
    return [GatewayRecord(**dict(row._mapping)) for row in connection.execute(query)]


def contract_list(connection: Connection, scope: Scope) -> list[ContractRecord]:
    """The contracts of the principal's tenant, as provider or as client (ended ones included);
    every contract for an unconfined scope. A provider does not see its clients' contracts with
    other providers."""
    c = contracts.c
    query = select(contracts).order_by(c.contract_id)
    if not scope.unconfined:
        own = scope.principal.tenant
        query = query.where(or_(c.provider == own, c.client == own))
    return [ContractRecord.from_row(row) for row in connection.execute(query)]
