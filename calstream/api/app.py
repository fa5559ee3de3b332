"""The FastAPI application: the resources under ``/v1``, problem details, the OpenAPI document.

:func:`application` builds the routes (it touches no store: the OpenAPI document is made from
it); :func:`create_app` gives them a store, and, for the command line in process only, the
local principal to act as.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from calstream.api import problems
from calstream.api.access import ApiContext
from calstream.api.routes import fleet, instruments, probes, registry
from metrology.tenancy import Principal
from storage.contract import Store

TITLE = "calstream API"
VERSION = "1"
"""The version of the ``/v1`` API the document describes (not the package's)."""
OPENAPI_URL = "/v1/openapi.json"

DESCRIPTION = """\
The registry (tenants, sites, gateways, instruments, calibration certificates, contracts, API
tokens, the audit trail) and the fleet's health, for people and scripts.

Authentication: `Authorization: Bearer <token>`; a token carries a tenant and a role (viewer,
operator, calibration, admin), and storage confines every query and every change to what that
role may do in that tenant and, for a calibration provider, at its clients under a contract in
force. An object outside the caller's scope answers 404 exactly as one that does not exist.

Errors are RFC 9457 problem details (`application/problem+json`) naming each invalid field.
Lists that grow without bound are pages (`limit`, `cursor`, a `next` link), newest first; time
ranges are `from` (inclusive) and `until` (exclusive), ISO 8601 with a UTC offset. Times in
answers are epoch seconds, UTC; values are in the instrument's registered unit.
"""


def application() -> FastAPI:
    """The routes and their documentation, with no store behind them yet."""
    app = FastAPI(
        title=TITLE,
        version=VERSION,
        description=DESCRIPTION,
        openapi_url=OPENAPI_URL,
        docs_url="/v1/docs",
        redoc_url=None,
        separate_input_output_schemas=False,
        generate_unique_id_function=lambda route: route.name,
    )
    problems.install(app)
    for module in (probes, registry, instruments, fleet):
        app.include_router(module.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_of(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def create_app(store: Store, *, local: Principal | None = None) -> FastAPI:
    """The API on ``store``.

    ``local``: act as this local principal and read no token (the command line's embedded
    mode calls the app in process; a served app never gets one).
    """
    app = application()
    app.state.calstream = ApiContext(store, local)
    return app


def document_of(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``, errors as ``application/problem+json``."""
    document = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
        separate_input_output_schemas=False,
    )
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for code, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if int(code) >= 400 and "application/json" in content:
                    content[problems.PROBLEM_JSON] = content.pop("application/json")
    return document
