"""Keyset pagination and time ranges for the scoped reads: newest first, on (time, id).

A page is read with ``LIMIT limit + 1``: the extra row says whether another page follows, and
the last item's (time, id) is the cursor the next page starts after. Unlike ``OFFSET``, a cursor
stays right while new rows arrive (they are newer, so they land before it) and costs one index
seek however deep the page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import and_, or_, true

from storage.errors import InvalidDocumentError
from storage.registry.records import Cursor, Page

_T = TypeVar("_T")

MAX_PAGE = 1000
"""The most items one page returns."""


def check_limit(limit: int, largest: int = MAX_PAGE) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= largest:
        raise InvalidDocumentError(
            f"limit: must be an integer from 1 to {largest}, got {limit!r}",
            [("limit", f"an integer from 1 to {largest}")],
        )
    return limit


def time_range(column: Any, start: float | None, end: float | None) -> list[Any]:
    """``start <= column < end``, either side open when ``None``."""
    if start is not None and end is not None and not start < end:
        raise InvalidDocumentError(
            f"end: must be after start ({start} .. {end})", [("end", "must be after start")]
        )
    return [
        true() if start is None else column >= start,
        true() if end is None else column < end,
    ]


def after_cursor(ts: Any, id_: Any, cursor: Cursor | None) -> Any:
    """Rows after ``cursor`` in newest-first order: earlier time, or the same time, lower id."""
    if cursor is None:
        return true()
    return or_(ts < cursor.ts, and_(ts == cursor.ts, id_ < cursor.id))


def page_of(
    rows: Sequence[Any], limit: int, item: Callable[[Any], _T], key: Callable[[Any], Cursor]
) -> Page[_T]:
    """The first ``limit`` rows as items; a cursor when one more row was read."""
    following = key(rows[limit - 1]) if len(rows) > limit else None
    return Page([item(row) for row in rows[:limit]], following)
