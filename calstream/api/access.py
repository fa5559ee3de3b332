"""Who calls: the bearer token, the principal it names, the scope that principal has now.

Every ``/v1`` resource depends on :data:`Caller` (or :data:`CallerScope`): the token in
``Authorization: Bearer <token>`` is checked by storage
(:meth:`~storage.registry.operations.RegistryOperations.authenticate`); a missing, malformed,
unknown, revoked or expired token gets the same 401 with ``WWW-Authenticate: Bearer``
(:func:`~calstream.api.problems.unauthenticated`). The principal, never the request, then goes
to the operation or the scoped read: storage confines what it touches.

An app made for the command line on the server itself (``create_app(store, local=...)``) acts
as that local principal and reads no header: it is only ever called in process, never served.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from calstream.api.problems import unauthenticated
from metrology.tenancy import Principal, Scope
from storage.contract import Store
from storage.errors import AuthenticationError


@dataclass(frozen=True)
class ApiContext:
    """What the routes reach: the store, and the principal of an in-process app (or None)."""

    store: Store
    local: Principal | None = None


bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    bearerFormat="cs_<id>_<secret>",
    description="An API token (`calstream tokens create`, or POST /v1/tokens): it carries a "
    "tenant and a role.",
)


def context(request: Request) -> ApiContext:
    found: ApiContext = request.app.state.calstream
    return found


def store(api: Annotated[ApiContext, Depends(context)]) -> Store:
    return api.store


def principal(
    api: Annotated[ApiContext, Depends(context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Principal:
    """The principal of the request's bearer token; 401 (one answer for every refusal)."""
    if api.local is not None:
        return api.local
    if credentials is None or not credentials.credentials:
        raise unauthenticated()
    try:
        return api.store.operations.authenticate(credentials.credentials)
    except AuthenticationError as exc:
        raise unauthenticated() from exc


def scope(
    api: Annotated[ApiContext, Depends(context)],
    caller: Annotated[Principal, Depends(principal)],
) -> Scope:
    """What the caller may do now (its contracts in force), for the scoped reads."""
    return api.store.operations.scope(caller)


StoreDep = Annotated[Store, Depends(store)]
Caller = Annotated[Principal, Depends(principal)]
CallerScope = Annotated[Scope, Depends(scope)]
