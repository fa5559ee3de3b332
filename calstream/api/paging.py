"""Pagination and time ranges of the list resources.

Lists that grow without bound (the audit trail, status history, dead letters) are read a page at
a time, newest first, with keyset cursors (:mod:`storage.registry.pages`): ``limit`` items at
most, and ``next``, the URL of the following page (the same query with ``cursor`` set; null on
the last page; relative to the server). A cursor is opaque to clients: the (time, id) of the
page's last item, in base64url. Unlike an offset, it stays right while new items arrive.

Time ranges are ``from`` (inclusive) and ``until`` (exclusive), ISO 8601 date-times with a UTC
offset (``2026-03-01T00:00:00Z``); a time without an offset is refused, as it names no instant.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from datetime import datetime
from typing import Annotated

from fastapi import Query, Request
from pydantic import AwareDatetime, BeforeValidator

from calstream.api.problems import FieldError, invalid
from metrology.timebase import to_epoch
from storage.registry.pages import MAX_PAGE
from storage.registry.records import Cursor

DEFAULT_PAGE = 100

_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _date_time_text(value: object) -> object:
    """Only date-time text: pydantic would also read ``0.5`` as seconds since 1970."""
    if isinstance(value, str) and not _DATE_TIME.match(value):
        raise ValueError("must be an ISO 8601 date-time with a UTC offset, 2026-03-01T00:00:00Z")
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_date_time_text)]
"""A time in a query: ISO 8601 text with an offset (``Z`` or ``+00:00``)."""

Limit = Annotated[
    int, Query(ge=1, le=MAX_PAGE, description=f"most items in one page (1 to {MAX_PAGE})")
]
CursorParam = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=200,
        description="where the page starts: the `next` link of the previous page gives it",
    ),
]
From = Annotated[
    Instant | None,
    Query(alias="from", description="start of the time range, inclusive (ISO 8601, UTC offset)"),
]
Until = Annotated[
    Instant | None,
    Query(description="end of the time range, exclusive (ISO 8601, UTC offset)"),
]

_LARGEST_ID = 2**31 - 1
"""Row ids are 32-bit integers on PostgreSQL."""
_CURSOR = re.compile(r"^([0-9a-f.xp+-]{1,40}):([0-9]{1,10})$")


def encode_cursor(cursor: Cursor) -> str:
    """The cursor as opaque text (the float in hex, so the time comes back bit for bit)."""
    raw = f"{float(cursor.ts).hex()}:{cursor.id}".encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(text: str | None) -> Cursor | None:
    """The cursor a ``next`` link carries; 422 naming ``cursor`` for anything else."""
    if text is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        match = _CURSOR.match(raw)
        if match is None:
            raise ValueError(raw)
        ts, row = float.fromhex(match.group(1)), int(match.group(2))
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        ts, row = math.nan, 0
    if not math.isfinite(ts) or not 1 <= row <= _LARGEST_ID:
        raise invalid(
            [
                FieldError(
                    location="query",
                    field="cursor",
                    detail="not a cursor of this list: take it from the `next` link",
                )
            ]
        )
    return Cursor(ts, row)


def epoch(moment: datetime | None) -> float | None:
    return None if moment is None else to_epoch(moment)


def time_range(start: datetime | None, end: datetime | None) -> tuple[float | None, float | None]:
    """``(from, until)`` in epoch seconds; 422 naming ``until`` unless it is after ``from``."""
    first, last = epoch(start), epoch(end)
    if first is not None and last is not None and not first < last:
        raise invalid([FieldError(location="query", field="until", detail="must be after 'from'")])
    return first, last


def next_link(request: Request, cursor: Cursor | None) -> str | None:
    """The URL of the page after ``cursor``, relative to the server (None: this was the last
    page): the same path and query, ``cursor`` set. Relative, so it stays right behind a proxy."""
    if cursor is None:
        return None
    url = request.url.include_query_params(cursor=encode_cursor(cursor))
    return f"{url.path}?{url.query}"
