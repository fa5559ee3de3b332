"""The resources of the API, one module per group (each an ``APIRouter``).

- :mod:`calstream.api.routes.registry`: tenants, sites, gateways, contracts, tokens, audit trail
- :mod:`calstream.api.routes.instruments`: instruments, their calibrations, health and series
- :mod:`calstream.api.routes.fleet`: fleet health, status history, dead letters, due list
- :mod:`calstream.api.routes.probes`: ``/healthz`` and ``/readyz``

Helpers shared by the routes: :func:`errors` (the problem responses a route documents) and
:func:`located` (storage's refusals, with invalid fields placed in the path or the query).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from calstream.api.problems import Problem, from_storage
from storage.errors import StorageError

_WHY = {
    401: "No valid token: missing, unknown, revoked or expired (one answer for all).",
    403: "The caller sees the object, but its role may not do this.",
    404: "No such object within the caller's scope (an object of a tenant outside it reads "
    "exactly as one that does not exist).",
    409: "The request contradicts what is stored (a duplicate, an overlap, a retired object).",
    422: "An invalid field: `errors` names each one.",
    501: "This store cannot answer this query yet.",
    503: "The store did not answer.",
}

READ = (401, 422, 503)
"""What any authenticated read may answer besides 200."""
WRITE = (401, 403, 404, 409, 422, 503)
"""What any registry operation may answer besides its success."""


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The problem responses a route documents (``application/problem+json``)."""
    return {code: {"model": Problem, "description": _WHY[code]} for code in sorted(set(codes))}


@contextmanager
def located(*, path: Iterable[str] = (), query: Mapping[str, str] | None = None) -> Iterator[None]:
    """Storage's refusals as problems, the fields in ``path`` and ``query`` placed there."""
    try:
        yield
    except StorageError as exc:
        raise from_storage(exc, path=path, query=query) from exc
