"""Instruments: registered, changed, retired; their certificates, health, series and history.

An instrument of a tenant outside the caller's scope answers 404 exactly as an id that is not
registered. Certificates are recorded and amended (a new revision with a reason), never deleted.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from calstream.api.access import Caller, CallerScope, StoreDep
from calstream.api.bodies import (
    Amendment,
    InstrumentChange,
    NewCertificate,
    RegisterInstrument,
    Retirement,
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
from calstream.api.problems import FieldError, invalid
from calstream.api.routes import READ, WRITE, errors, located
from calstream.api.schemas import (
    CalibrationList,
    InstrumentHealth,
    InstrumentList,
    Revision,
    Series,
    StatusHistoryPage,
    calibration_list,
    revision_of,
)
from metrology.timebase import SECONDS_PER_DAY
from metrology.wire import IDENTIFIER_PATTERN
from storage.queries import MAX_POINTS
from storage.registry.records import InstrumentRecord

router = APIRouter(prefix="/v1/instruments", tags=["instruments"], route_class=StrictJsonRoute)

InstrumentId = Annotated[str, Path(pattern=IDENTIFIER_PATTERN, description="the instrument's id")]
CertificateId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=128,
        pattern=r"^[^\x00-\x1f\x7f/]+$",
        description="the certificate's number as recorded",
    ),
]
_ID = ["instrument_id"]

DEFAULT_SERIES_DAYS = 7.0
"""The range of a series read without ``from``: the week before ``until``."""


@router.get(
    "", response_model=InstrumentList, responses=errors(*READ, 404),
    summary="Registered instruments of the tenants the caller reads",
)  # fmt: skip
def list_instruments(
    store: StoreDep,
    scope: CallerScope,
    tenant: Annotated[
        str | None, Query(pattern=IDENTIFIER_PATTERN, description="only this tenant")
    ] = None,
    retired: Annotated[bool, Query(description="include retired instruments")] = False,
) -> InstrumentList:
    """By tenant, site and id."""
    return InstrumentList(items=store.instruments(scope, tenant=tenant, include_retired=retired))


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=InstrumentRecord,
    responses=errors(*WRITE), summary="Register an instrument (admin of the tenant)",
)  # fmt: skip
def register_instrument(
    store: StoreDep, caller: Caller, body: RegisterInstrument
) -> InstrumentRecord:
    """At a registered site, on a registered gateway of that site. Without ``decision_rule``
    or ``interval_policy``, the tenant's apply."""
    return store.operations.register_instrument(caller, document(body))


@router.get(
    "/{instrument_id}", response_model=InstrumentRecord, responses=errors(*READ, 404),
    summary="One instrument as registered",
)  # fmt: skip
def show_instrument(
    store: StoreDep, scope: CallerScope, instrument_id: InstrumentId
) -> InstrumentRecord:
    return store.operations.instrument(scope, instrument_id)


@router.patch(
    "/{instrument_id}", response_model=InstrumentRecord, responses=errors(*WRITE),
    summary="Change an instrument (admin of the tenant)",
)  # fmt: skip
def change_instrument(
    store: StoreDep, caller: Caller, instrument_id: InstrumentId, body: InstrumentChange
) -> InstrumentRecord:
    """Only the fields given change; ``decision_rule`` or ``interval_policy`` given as null
    return to the tenant's default. Unit, measurand and range do not change (the history is in
    them): register a new instrument instead."""
    with located(path=_ID):
        return store.operations.change_instrument(
            caller, document(body, instrument_id=instrument_id)
        )


@router.post(
    "/{instrument_id}/retire", response_model=InstrumentRecord, responses=errors(*WRITE),
    summary="Retire an instrument (admin of the tenant)",
)  # fmt: skip
def retire_instrument(
    store: StoreDep, caller: Caller, instrument_id: InstrumentId, body: Retirement
) -> InstrumentRecord:
    """It stays, with its history, and takes no new readings, certificates or changes."""
    with located(path=_ID):
        return store.operations.retire_instrument(
            caller, document(body, instrument_id=instrument_id)
        )


# --- calibrations ---


@router.get(
    "/{instrument_id}/calibrations", tags=["calibrations"], response_model=CalibrationList,
    responses=errors(*READ, 404), summary="Certificates of an instrument, every revision",
)  # fmt: skip
def list_calibrations(
    store: StoreDep, scope: CallerScope, instrument_id: InstrumentId
) -> CalibrationList:
    return calibration_list(instrument_id, store.calibrations(scope, instrument_id))


@router.post(
    "/{instrument_id}/calibrations", tags=["calibrations"], status_code=status.HTTP_201_CREATED,
    response_model=Revision, responses=errors(*WRITE),
    summary="Record a calibration certificate (calibration role)",
)  # fmt: skip
def record_calibration(
    store: StoreDep, caller: Caller, instrument_id: InstrumentId, body: NewCertificate
) -> Revision:
    """Revision 0 of a new certificate, dated after every other of the instrument; numbers in
    ``unit`` (default: the instrument's) are converted to the registered unit."""
    with located(path=_ID):
        record = store.operations.record_calibration(
            caller, document(body, instrument_id=instrument_id)
        )
    return revision_of(record)


@router.post(
    "/{instrument_id}/calibrations/{certificate}/amendments", tags=["calibrations"],
    status_code=status.HTTP_201_CREATED, response_model=Revision, responses=errors(*WRITE),
    summary="Amend a certificate: a new revision, with the reason (calibration role)",
)  # fmt: skip
def amend_calibration(
    store: StoreDep,
    caller: Caller,
    instrument_id: InstrumentId,
    certificate: CertificateId,
    body: Amendment,
) -> Revision:
    """ISO/IEC 17025:2017 §7.8.8: the earlier revisions stay; who and when are the caller and
    now. Fields left out keep the previous revision's value."""
    with located(path=[*_ID, "certificate"]):
        record = store.operations.amend_calibration(
            caller, document(body, instrument_id=instrument_id, certificate=certificate)
        )
    return revision_of(record)


# --- health, series, history ---


@router.get(
    "/{instrument_id}/health", tags=["health"], response_model=InstrumentHealth,
    responses=errors(*READ, 404), summary="An instrument's health with every number behind it",
)  # fmt: skip
def instrument_health(
    store: StoreDep, scope: CallerScope, instrument_id: InstrumentId
) -> InstrumentHealth:
    snapshot = store.instrument_health(scope, instrument_id)
    if snapshot is not None:
        return InstrumentHealth.of(snapshot)
    return InstrumentHealth.no_data(store.operations.instrument(scope, instrument_id))


@router.get(
    "/{instrument_id}/series", tags=["health"], response_model=Series,
    responses=errors(*READ, 404, 501),
    summary="Readings and residuals over a time range, downsampled",
)  # fmt: skip
def instrument_series(
    store: StoreDep,
    scope: CallerScope,
    instrument_id: InstrumentId,
    start: From = None,
    until: Until = None,
    points: Annotated[
        int, Query(ge=1, le=MAX_POINTS, description="most time buckets in the answer")
    ] = 500,
) -> Series:
    """Without ``until``: now; without ``from``: a week before ``until``. With more readings
    than ``points``, the range is cut into ``points`` equal buckets, each with the count, mean
    time, and mean, minimum and maximum of the value, the corrected value and the residual."""
    first, last = time_range(start, until)
    end = store.operations.clock() if last is None else last
    begin = end - DEFAULT_SERIES_DAYS * SECONDS_PER_DAY if first is None else first
    if not begin < end:
        raise invalid(
            [FieldError(location="query", field="from", detail="must be before until (now)")]
        )
    with located(path=_ID, query={"start": "from", "end": "until", "max_points": "points"}):
        buckets = store.instrument_series(scope, instrument_id, begin, end, points)
    return Series(instrument_id=instrument_id, start=begin, end=end, points=points, buckets=buckets)


@router.get(
    "/{instrument_id}/status-history", tags=["health"], response_model=StatusHistoryPage,
    responses=errors(*READ, 404), summary="An instrument's status changes, newest first",
)  # fmt: skip
def instrument_status_history(
    request: Request,
    store: StoreDep,
    scope: CallerScope,
    instrument_id: InstrumentId,
    start: From = None,
    until: Until = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: CursorParam = None,
) -> StatusHistoryPage:
    first, last = time_range(start, until)
    with located(path=_ID, query={"start": "from", "end": "until"}):
        page = store.status_history(
            scope, instrument_id=instrument_id, start=first, end=last, limit=limit,
            after=decode_cursor(cursor),
        )  # fmt: skip
    return StatusHistoryPage(items=list(page.items), next=next_link(request, page.next))
