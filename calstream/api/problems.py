"""Errors as RFC 9457 problem details (``application/problem+json``), naming the field.

Every error the API returns is one JSON object::

    {"type": "urn:calstream:problem:invalid-field", "title": "Invalid request",
     "status": 422, "detail": "tolerance.upper: Input should be a valid number",
     "instance": "/v1/instruments",
     "errors": [{"location": "body", "field": "tolerance.upper", "pointer": "#/tolerance/upper",
                 "detail": "Input should be a valid number"}]}

``errors`` (an extension member, RFC 9457 §3.2) lists every invalid field: where it is
(``body``, ``query``, ``path``, ``header``), its name as the client wrote it (dotted into the
body), and for the body a JSON Pointer (RFC 6901, ``#`` is the whole body). The ``type`` URIs
name the kind of problem; they are stable, listed in ``docs/api.md``, and not meant to be
dereferenced.

How storage's refusals answer (:func:`from_storage`):

==========================  ======  ==================================================
error                       status  type
==========================  ======  ==================================================
AuthenticationError         401     ``unauthenticated`` (with ``WWW-Authenticate: Bearer``)
PermissionDeniedError       404     ``not-found``, when the object is outside the caller's
                                    scope: worded as an object that does not exist
PermissionDeniedError       403     ``forbidden``, when the caller sees the object but its
                                    role may not do this
NotFoundError               404     ``not-found``
ConflictError               409     ``conflict``
InvalidDocumentError        422     ``invalid-field``
UnsupportedQuery            501     ``not-implemented``
any other StorageError      503     ``store-unavailable`` (the cause is in the log)
==========================  ======  ==================================================
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from storage.errors import (
    AuthenticationError,
    ConflictError,
    InvalidDocumentError,
    NotFoundError,
    PermissionDeniedError,
    StorageError,
    UnsupportedQuery,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE = "urn:calstream:problem:"
"""Prefix of every problem type: ``urn:calstream:problem:not-found`` and so on."""

UNAUTHENTICATED_DETAIL = (
    "a valid API token is required as 'Authorization: Bearer <token>' "
    "(the token given, if any, is unknown, revoked or expired)"
)
"""The one answer to a request without a valid token, whatever was wrong with it."""

Location = Literal["body", "query", "path", "header"]

TITLES = {
    "unauthenticated": "Authentication required",
    "forbidden": "Not allowed",
    "not-found": "Not found",
    "method-not-allowed": "Method not allowed",
    "conflict": "Conflict with what is stored",
    "invalid-field": "Invalid request",
    "http-error": "HTTP error",
    "not-implemented": "Not implemented by this store",
    "store-unavailable": "Store unavailable",
    "internal-error": "Internal error",
}
"""The title of each kind of problem (RFC 9457 §3.1.3: the same for every occurrence)."""


class FieldError(BaseModel):
    """One invalid field of a request."""

    location: Location = Field(description="where the field is: body, query, path or header")
    field: str = Field(description="its name as the request gives it, dotted into the body")
    pointer: str | None = Field(
        default=None, description="JSON Pointer (RFC 6901) into the body: '#' is the whole body"
    )
    detail: str


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    type: str = Field(description="URI naming the kind of problem (urn:calstream:problem:...)")
    title: str = Field(description="short summary of the kind of problem")
    status: int = Field(description="the HTTP status code")
    detail: str | None = Field(default=None, description="what was wrong with this request")
    instance: str | None = Field(default=None, description="the request's path")
    errors: list[FieldError] | None = Field(
        default=None, description="every invalid field (422 only)"
    )


class ApiProblem(Exception):
    """An error answered with a problem details object."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str | None = None,
        *,
        errors: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or kind)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.errors = list(errors)
        self.headers = dict(headers or {})


def unauthenticated() -> ApiProblem:
    """401 for a missing, malformed, unknown, revoked or expired token alike (RFC 6750 §3)."""
    return ApiProblem(
        401, "unauthenticated", UNAUTHENTICATED_DETAIL, headers={"WWW-Authenticate": "Bearer"}
    )


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def body_field(path: Iterable[str | int], detail: str) -> FieldError:
    """An invalid field of the body at ``path`` (empty: the whole body)."""
    parts = [str(p) for p in path]
    return FieldError(
        location="body",
        field=".".join(parts),
        pointer="#" + "".join("/" + _escape(p) for p in parts),
        detail=detail,
    )


def field_errors(errors: Sequence[Any]) -> list[FieldError]:
    """FastAPI's (pydantic's) validation errors as fields of the request."""
    found = []
    for error in errors:
        location = [p for p in error.get("loc", ()) if p is not None]
        where = str(location[0]) if location else "body"
        message = str(error.get("msg", "invalid"))
        if where == "body":
            found.append(body_field(location[1:], message))
        elif where == "query" or where == "path" or where == "header":
            name = ".".join(str(p) for p in location[1:])
            found.append(FieldError(location=where, field=name, detail=message))
        else:
            found.append(body_field([str(p) for p in location], message))
    return found


def invalid(errors: Sequence[FieldError]) -> ApiProblem:
    """422 naming every invalid field (the detail lists the first five)."""
    detail = "; ".join(f"{e.field or 'body'}: {e.detail}" for e in errors[:5])
    if len(errors) > 5:
        detail += f"; and {len(errors) - 5} more"
    return ApiProblem(422, "invalid-field", detail, errors=errors)


OUT_OF_SCOPE = " is not in the scope of "
"""How :func:`storage.registry.scoped.denied` words the refusal of an object outside the
caller's scope, whether it exists or not (storage's tests hold it to these words)."""


def from_storage(
    exc: StorageError,
    *,
    path: Iterable[str] = (),
    query: Mapping[str, str] | None = None,
) -> ApiProblem:
    """The problem that answers storage's refusal ``exc``.

    An invalid field of the operation's document is placed where the request gave it: the
    fields named in ``path`` are path parameters, ``query`` maps a document field to the query
    parameter that set it (``{"end": "until"}``), everything else is in the body.
    """
    if isinstance(exc, AuthenticationError):
        return unauthenticated()
    if isinstance(exc, PermissionDeniedError):
        if OUT_OF_SCOPE in str(exc):
            return ApiProblem(404, "not-found", str(exc))
        return ApiProblem(403, "forbidden", str(exc))
    if isinstance(exc, NotFoundError):
        return ApiProblem(404, "not-found", str(exc))
    if isinstance(exc, ConflictError):
        return ApiProblem(409, "conflict", str(exc))
    if isinstance(exc, InvalidDocumentError):
        in_path, in_query = set(path), dict(query or {})
        errors = []
        for name, message in exc.errors or [("document", str(exc))]:
            if name in in_path:
                errors.append(FieldError(location="path", field=name, detail=message))
            elif name in in_query:
                errors.append(FieldError(location="query", field=in_query[name], detail=message))
            else:
                parts = [] if name == "document" else name.split(".")
                errors.append(body_field(parts, message))
        return invalid(errors)
    if isinstance(exc, UnsupportedQuery):
        return ApiProblem(501, "not-implemented", str(exc))
    log.error("store error: %s", exc, exc_info=exc)
    return ApiProblem(
        503,
        "store-unavailable",
        "the store did not answer; try again later (the server's log has the cause)",
        headers={"Retry-After": "5"},
    )


def printable(text: str) -> str:
    """``text`` as UTF-8 can carry it: a lone surrogate (from a hostile JSON escape) is written
    as its escape, so echoing a client's field name never breaks the answer."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _printable(value: Any) -> Any:
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(k): _printable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_printable(v) for v in value]
    return value


def problem_response(request: Request, problem: ApiProblem) -> JSONResponse:
    body = Problem(
        type=PROBLEM_TYPE + problem.kind,
        title=TITLES.get(problem.kind, TITLES["http-error"]),
        status=problem.status,
        detail=problem.detail,
        instance=request.url.path,
        errors=problem.errors or None,
    )
    return JSONResponse(
        _printable(body.model_dump(exclude_none=True)),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers or None,
    )


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` with problem details."""

    @app.exception_handler(ApiProblem)
    async def api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(request, exc)

    @app.exception_handler(StorageError)
    async def storage_error(request: Request, exc: StorageError) -> JSONResponse:
        return problem_response(request, from_storage(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(request, invalid(field_errors(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not-found", 405: "method-not-allowed", 401: "unauthenticated"}.get(
            exc.status_code, "http-error"
        )
        detail = "no such resource" if exc.status_code == 404 else str(exc.detail)
        headers = dict(exc.headers or {})
        return problem_response(request, ApiProblem(exc.status_code, kind, detail, headers=headers))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return problem_response(
            request,
            ApiProblem(
                500,
                "internal-error",
                f"{type(exc).__name__}: the server could not answer (its log has the traceback)",
            ),
        )
