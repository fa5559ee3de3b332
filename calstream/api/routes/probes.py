"""``/healthz`` (the API answers) and ``/readyz`` (the store answers too), without a token,
like the pipeline's own probes (:mod:`calstream.runtime.observability`)."""

from __future__ import annotations

import logging

from fastapi import APIRouter

from calstream.api.access import StoreDep
from calstream.api.problems import ApiProblem
from calstream.api.routes import errors
from calstream.api.schemas import Probe
from storage.errors import StorageError

log = logging.getLogger(__name__)

router = APIRouter(tags=["probes"])


@router.get("/healthz", response_model=Probe, summary="Liveness: the API answers")
def healthz() -> Probe:
    return Probe()


@router.get(
    "/readyz", response_model=Probe, responses=errors(503),
    summary="Readiness: the store answers a query",
)  # fmt: skip
def readyz(store: StoreDep) -> Probe:
    try:
        store.registered_instruments()
    except StorageError as exc:
        log.warning("not ready: %s", exc)
        raise ApiProblem(
            503, "store-unavailable", "the store does not answer (the server's log has the cause)"
        ) from exc
    return Probe()
