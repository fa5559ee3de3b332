"""Read queries of the embedded store that are its own: the series tables (SQLite's SQL).

The status queries (counts, worst instruments, alerts, dead letters, snapshots) are the
registry's, in SQLAlchemy Core (:mod:`storage.registry.queries`), run on the store's connection.
"""

from __future__ import annotations

import math
import sqlite3

from sqlalchemy import Connection, text

from storage.errors import InvalidDocumentError
from storage.registry.records import SeriesBucket
from storage.schema import NO_DATA, STATUS_KEYS

__all__ = ["NO_DATA", "STATUS_KEYS", "instrument_series", "reading_count"]


def reading_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0])


def instrument_series(
    connection: Connection, instrument_id: str, start: float, end: float, max_points: int
) -> list[SeriesBucket]:
    """Readings and residuals of one instrument in ``[start, end)``, at most ``max_points``.

    With no more readings than ``max_points``, every reading is returned (a bucket of one);
    otherwise the range is cut into ``max_points`` equal buckets and each bucket with readings
    gives their count, mean time, and the mean, minimum and maximum of the value, the corrected
    value and the residual (over the readings that have one), computed in SQL (``GROUP BY`` the
    bucket number). Either way one search of the ``readings`` primary key over the time range.
    """
    check_points(max_points)
    if not (math.isfinite(start) and math.isfinite(end) and start < end):
        raise InvalidDocumentError(
            f"end: the range must be finite with start < end, got {start} .. {end}",
            [("end", "must be after start")],
        )
    window = {"instrument_id": instrument_id, "start": start, "end": end}
    count = connection.execute(text(_COUNT), window).scalar_one()
    if count <= max_points:
        rows = connection.execute(text(_RAW), window)
    else:
        width = (end - start) / max_points
        rows = connection.execute(
            text(_BUCKETS), {**window, "width": width, "last": max_points - 1}
        )
    return [SeriesBucket(*row) for row in rows]


MAX_POINTS = 10_000
"""The most points a series read returns."""


def check_points(max_points: int) -> int:
    if (
        isinstance(max_points, bool)
        or not isinstance(max_points, int)
        or not (1 <= max_points <= MAX_POINTS)
    ):
        raise InvalidDocumentError(
            f"max_points: must be an integer from 1 to {MAX_POINTS}, got {max_points!r}",
            [("max_points", f"an integer from 1 to {MAX_POINTS}")],
        )
    return max_points


_WINDOW = """
FROM readings AS r
LEFT JOIN residuals AS x ON x.ts = r.ts AND x.instrument_id = r.instrument_id AND x.seq = r.seq
WHERE r.instrument_id = :instrument_id AND r.ts >= :start AND r.ts < :end
"""
_COUNT = "SELECT COUNT(*) " + _WINDOW
_RAW = (
    "SELECT r.ts, r.ts, r.ts, 1, r.value, r.value, r.value, r.corrected, r.corrected, "
    "r.corrected, (x.residual IS NOT NULL), x.residual, x.residual, x.residual, x.u_residual"
    + _WINDOW
    + "ORDER BY r.ts, r.seq"
)
# The bucket number, clamped: (ts - start) / width can round up to max_points just below end.
_BUCKET = "MIN(CAST((r.ts - :start) / :width AS INTEGER), :last)"
_BUCKETS = (
    f"SELECT :start + {_BUCKET} * :width, MIN(:start + ({_BUCKET} + 1) * :width, :end), "
    "AVG(r.ts), COUNT(*), AVG(r.value), MIN(r.value), MAX(r.value), AVG(r.corrected), "
    "MIN(r.corrected), MAX(r.corrected), COUNT(x.residual), AVG(x.residual), MIN(x.residual), "
    "MAX(x.residual), AVG(x.u_residual)" + _WINDOW + f"GROUP BY {_BUCKET} ORDER BY {_BUCKET}"
)
