"""The fleet as a whole: health by status, status history, dead letters, the due list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from calstream.api.access import CallerScope, StoreDep
from calstream.api.paging import (
    DEFAULT_PAGE,
    CursorParam,
    From,
    Instant,
    Limit,
    Until,
    decode_cursor,
    epoch,
    next_link,
    time_range,
)
from calstream.api.routes import READ, errors, located
from calstream.api.schemas import DeadLetterPage, DueList, StatusHistoryPage
from metrology.wire import IDENTIFIER_PATTERN
from storage.registry.pages import MAX_PAGE
from storage.registry.scoped import FleetHealth

router = APIRouter(prefix="/v1")

TenantFilter = Annotated[
    str | None,
    Query(pattern=IDENTIFIER_PATTERN, description="only this tenant (one the caller reads)"),
]
_RANGE = {"start": "from", "end": "until"}


@router.get(
    "/fleet/health", tags=["health"], response_model=FleetHealth, responses=errors(*READ, 404),
    summary="Instruments by status, and the worst of them",
)  # fmt: skip
def fleet_health(
    store: StoreDep,
    scope: CallerScope,
    tenant: TenantFilter = None,
    worst: Annotated[
        int, Query(ge=1, le=MAX_PAGE, description="how many of the most severe to list")
    ] = 10,
) -> FleetHealth:
    """Counts over every status (zeros included; ``NO_DATA``: registered, not heard from) of
    the instruments the caller reads, and the most severe first, with their numbers."""
    return store.fleet_health(scope, worst, tenant)


@router.get(
    "/status-history", tags=["health"], response_model=StatusHistoryPage,
    responses=errors(*READ, 404), summary="Status changes of the fleet, newest first",
)  # fmt: skip
def status_history(
    request: Request,
    store: StoreDep,
    scope: CallerScope,
    tenant: TenantFilter = None,
    start: From = None,
    until: Until = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: CursorParam = None,
) -> StatusHistoryPage:
    """Every status change (the alerts' history) of the instruments the caller reads."""
    first, last = time_range(start, until)
    with located(query=_RANGE):
        page = store.status_history(
            scope, tenant=tenant, start=first, end=last, limit=limit, after=decode_cursor(cursor)
        )
    return StatusHistoryPage(items=list(page.items), next=next_link(request, page.next))


@router.get(
    "/dead-letters", tags=["health"], response_model=DeadLetterPage,
    responses=errors(*READ, 404), summary="Refused input with its reason, newest first",
)  # fmt: skip
def dead_letters(
    request: Request,
    store: StoreDep,
    scope: CallerScope,
    tenant: TenantFilter = None,
    start: From = None,
    until: Until = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: CursorParam = None,
) -> DeadLetterPage:
    """By time received. A message refused before its tenant was known is seen by no token."""
    first, last = time_range(start, until)
    with located(query=_RANGE):
        page = store.dead_letters(
            scope, tenant=tenant, start=first, end=last, limit=limit, after=decode_cursor(cursor)
        )
    return DeadLetterPage(items=list(page.items), next=next_link(request, page.next))


@router.get(
    "/due", tags=["health"], response_model=DueList, responses=errors(*READ, 404),
    summary="Instruments by calibration due date, soonest first",
)  # fmt: skip
def due_list(
    store: StoreDep,
    scope: CallerScope,
    tenant: TenantFilter = None,
    before: Annotated[
        Instant | None,
        Query(description="only those due before this time (and the never calibrated)"),
    ] = None,
    limit: Limit = DEFAULT_PAGE,
) -> DueList:
    """Instruments in service, never calibrated first, then by the due date of the certificate
    in force with the latest calibration date."""
    return DueList(
        items=store.due_list(scope, tenant=tenant, due_before=epoch(before), limit=limit)
    )
