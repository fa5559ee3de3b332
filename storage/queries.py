"""Read queries of the embedded store that are its own: the series tables.

The status queries (counts, worst instruments, alerts, dead letters, snapshots) are the
registry's, in SQLAlchemy Core (:mod:`storage.registry.queries`), run on the store's connection.
"""

from __future__ import annotations

import sqlite3

from storage.schema import NO_DATA, STATUS_KEYS

__all__ = ["NO_DATA", "STATUS_KEYS", "reading_count"]


def reading_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0])
