"""Tenants, sites, gateways, contracts, tokens and the audit trail.

Each change is one registry operation (one audited transaction) called with the caller's
principal; each read is a scoped read with the caller's scope. Storage decides what the caller
may do and see (:mod:`metrology.tenancy`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from calstream.api.access import Caller, CallerScope, StoreDep
from calstream.api.bodies import (
    ContractEnd,
    CreateContract,
    CreateSite,
    CreateTenant,
    CreateToken,
    RegisterGateway,
    Revocation,
    StrictJsonRoute,
    document,
)
from calstream.api.paging import (
    DEFAULT_PAGE,
    CursorParam,
    From,
    Limit,
    Until,
    decode_cursor,
    next_link,
    time_range,
)
from calstream.api.routes import READ, WRITE, errors, located
from calstream.api.schemas import (
    AuditPage,
    ContractList,
    GatewayList,
    SiteList,
    TenantList,
    TokenList,
)
from metrology.wire import IDENTIFIER_PATTERN
from storage.registry import scoped
from storage.registry.records import (
    ContractRecord,
    GatewayRecord,
    IssuedToken,
    SiteRecord,
    TenantRecord,
    TokenRecord,
)

router = APIRouter(prefix="/v1", route_class=StrictJsonRoute)

TenantFilter = Annotated[
    str | None,
    Query(pattern=IDENTIFIER_PATTERN, description="only this tenant (one the caller reads)"),
]
TenantId = Annotated[str, Path(pattern=IDENTIFIER_PATTERN, description="the tenant's id")]
ContractId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the contract's number")]
TokenId = Annotated[
    str, Path(pattern=r"^[0-9a-f]{12}$", description="the token's id (not its secret)")
]

# --- tenants ---


@router.get(
    "/tenants", tags=["tenants"], response_model=TenantList, responses=errors(*READ),
    summary="The tenants the caller reads",
)  # fmt: skip
def list_tenants(store: StoreDep, scope: CallerScope) -> TenantList:
    """The caller's own tenant, and the clients of a provider under a contract in force."""
    return TenantList(items=store.operations.tenants(scope))


@router.post(
    "/tenants", tags=["tenants"], status_code=status.HTTP_201_CREATED, response_model=TenantRecord,
    responses=errors(*WRITE), summary="Create a tenant",
)  # fmt: skip
def create_tenant(store: StoreDep, caller: Caller, body: CreateTenant) -> TenantRecord:
    """Tenants are created by the server's own command line (`calstream tenants create`): a
    token of any role is refused (403)."""
    return store.operations.create_tenant(caller, document(body))


@router.get(
    "/tenants/{tenant_id}", tags=["tenants"], response_model=TenantRecord,
    responses=errors(*READ, 404), summary="One tenant",
)  # fmt: skip
def show_tenant(store: StoreDep, scope: CallerScope, tenant_id: TenantId) -> TenantRecord:
    for tenant in store.operations.tenants(scope):
        if tenant.tenant_id == tenant_id:
            return tenant
    raise scoped.missing(scope, "tenant", tenant_id)


# --- sites and gateways ---


@router.get(
    "/sites", tags=["sites"], response_model=SiteList, responses=errors(*READ, 404),
    summary="Sites of the tenants the caller reads",
)  # fmt: skip
def list_sites(store: StoreDep, scope: CallerScope, tenant: TenantFilter = None) -> SiteList:
    return SiteList(items=store.operations.sites(scope, tenant))


@router.post(
    "/sites", tags=["sites"], status_code=status.HTTP_201_CREATED, response_model=SiteRecord,
    responses=errors(*WRITE), summary="Create a site (admin of the tenant)",
)  # fmt: skip
def create_site(store: StoreDep, caller: Caller, body: CreateSite) -> SiteRecord:
    return store.operations.create_site(caller, document(body))


@router.get(
    "/gateways", tags=["gateways"], response_model=GatewayList, responses=errors(*READ, 404),
    summary="Gateways of the tenants the caller reads",
)  # fmt: skip
def list_gateways(store: StoreDep, scope: CallerScope, tenant: TenantFilter = None) -> GatewayList:
    return GatewayList(items=store.operations.gateways(scope, tenant))


@router.post(
    "/gateways", tags=["gateways"], status_code=status.HTTP_201_CREATED,
    response_model=GatewayRecord, responses=errors(*WRITE),
    summary="Register a gateway at a site (admin of the tenant)",
)  # fmt: skip
def register_gateway(store: StoreDep, caller: Caller, body: RegisterGateway) -> GatewayRecord:
    return store.operations.register_gateway(caller, document(body))


# --- contracts ---


@router.get(
    "/contracts", tags=["contracts"], response_model=ContractList, responses=errors(*READ),
    summary="Contracts of the caller's tenant, as provider or client",
)  # fmt: skip
def list_contracts(store: StoreDep, scope: CallerScope) -> ContractList:
    """Ended contracts included (``ended_at``); a provider does not see its clients'
    contracts with other providers."""
    return ContractList(items=store.operations.contracts(scope))


@router.post(
    "/contracts", tags=["contracts"], status_code=status.HTTP_201_CREATED,
    response_model=ContractRecord, responses=errors(*WRITE),
    summary="A calibration provider serves a client (admin of the client)",
)  # fmt: skip
def create_contract(store: StoreDep, caller: Caller, body: CreateContract) -> ContractRecord:
    return store.operations.create_contract(caller, document(body))


@router.get(
    "/contracts/{contract_id}", tags=["contracts"], response_model=ContractRecord,
    responses=errors(*READ, 404), summary="One contract",
)  # fmt: skip
def show_contract(store: StoreDep, scope: CallerScope, contract_id: ContractId) -> ContractRecord:
    for contract in store.operations.contracts(scope):
        if contract.contract_id == contract_id:
            return contract
    raise scoped.missing(scope, "contract", str(contract_id))


@router.post(
    "/contracts/{contract_id}/end", tags=["contracts"], response_model=ContractRecord,
    responses=errors(*WRITE), summary="End a contract (admin of the client or the provider)",
)  # fmt: skip
def end_contract(
    store: StoreDep, caller: Caller, contract_id: ContractId, body: ContractEnd
) -> ContractRecord:
    """From ``at`` (now if omitted; never in the past) the contract grants nothing; it stays
    listed with when and why it ended."""
    with located(path=["contract_id"]):
        return store.operations.end_contract(caller, document(body, contract_id=contract_id))


# --- tokens ---


@router.get(
    "/tokens", tags=["tokens"], response_model=TokenList, responses=errors(*READ, 403, 404),
    summary="Tokens of the tenants the caller administers",
)  # fmt: skip
def list_tokens(store: StoreDep, scope: CallerScope, tenant: TenantFilter = None) -> TokenList:
    """Never a secret, nor its digest. Other roles than admin see none."""
    return TokenList(items=store.operations.list_tokens(scope, tenant))


@router.post(
    "/tokens", tags=["tokens"], status_code=status.HTTP_201_CREATED, response_model=IssuedToken,
    responses=errors(*WRITE), summary="Create a token (admin of the tenant)",
)  # fmt: skip
def create_token(
    store: StoreDep, caller: Caller, body: CreateToken, response: Response
) -> IssuedToken:
    """The answer carries the token's secret (``token``) this once: it is stored only as a
    digest and can never be shown again."""
    response.headers["Cache-Control"] = "no-store"
    return store.operations.create_token(caller, document(body))


@router.post(
    "/tokens/{token_id}/revoke", tags=["tokens"], response_model=TokenRecord,
    responses=errors(*WRITE), summary="Revoke a token (admin of its tenant)",
)  # fmt: skip
def revoke_token(
    store: StoreDep, caller: Caller, token_id: TokenId, body: Revocation
) -> TokenRecord:
    with located(path=["token_id"]):
        return store.operations.revoke_token(caller, document(body, token_id=token_id))


# --- the audit trail ---


@router.get(
    "/audit", tags=["audit"], response_model=AuditPage, responses=errors(*READ, 404),
    summary="The audit trail: who changed what, when, before and after, why",
)  # fmt: skip
def audit_trail(
    request: Request,
    store: StoreDep,
    scope: CallerScope,
    tenant: TenantFilter = None,
    start: From = None,
    until: Until = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: CursorParam = None,
) -> AuditPage:
    """Entries of the tenants the caller reads, newest first, a page at a time."""
    first, last = time_range(start, until)
    with located(query={"start": "from", "end": "until", "limit": "limit"}):
        page = store.operations.audit_trail(
            scope, tenant=tenant, start=first, end=last, limit=limit, after=decode_cursor(cursor)
        )
    return AuditPage(items=list(page.items), next=next_link(request, page.next))
