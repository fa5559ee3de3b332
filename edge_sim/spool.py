"""Store-and-forward at the edge: an on-disk spool of messages waiting for the broker.

A gateway whose broker is unreachable keeps producing readings; :class:`GatewayPublisher`
appends each message to this spool (one SQLite transaction per message, fsynced:
``synchronous=FULL``) and, once the broker is back, publishes the spooled messages oldest first,
deleting each only after the broker's PUBACK. A crash of the gateway loses nothing spooled: the
next publisher on the same file publishes what is left (a message whose PUBACK was lost is sent
again; the pipeline's de-duplication by sequence number absorbs it).

Bounded by ``max_bytes`` of payload: when the next message does not fit, :meth:`Spool.append`
refuses it with :class:`SpoolFull` and the publisher counts it (``readings_refused``). The spool
never drops its oldest messages to make room: what was accepted is delivered, what was refused
is known to the caller (a real gateway would stop sampling or keep its own ring buffer).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from edge_sim.errors import SpoolError, SpoolFull

__all__ = ["Spool", "SpoolDepth", "SpoolError", "SpoolFull", "SpooledMessage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    readings INTEGER NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class SpoolDepth:
    messages: int
    readings: int
    bytes: int


@dataclass(frozen=True, slots=True)
class SpooledMessage:
    id: int
    topic: str
    payload: bytes
    readings: int


class Spool:
    """A FIFO of MQTT messages in one SQLite file, bounded by ``max_bytes`` of payload."""

    def __init__(self, path: str | Path, max_bytes: int = 256 * 1024 * 1024) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute(_SCHEMA)
            count, readings, size = self._conn.execute(
                "SELECT count(*), coalesce(sum(readings), 0), coalesce(sum(length(payload)), 0) "
                "FROM messages"
            ).fetchone()
        except (OSError, sqlite3.Error) as exc:
            raise SpoolError(f"cannot open spool {self.path}: {exc}") from exc
        self._messages, self._readings, self._bytes = int(count), int(readings), int(size)

    @property
    def depth(self) -> SpoolDepth:
        return SpoolDepth(self._messages, self._readings, self._bytes)

    @property
    def empty(self) -> bool:
        return self._messages == 0

    def append(self, topic: str, payload: bytes, readings: int) -> int:
        """Append one message; on return it is on disk. Returns its spool id.

        Raises :class:`SpoolFull` (nothing written, nothing dropped) when it does not fit.
        """
        size = len(payload)
        with self._lock:
            if self._bytes + size > self.max_bytes:
                raise SpoolFull(
                    f"spool {self.path} holds {self._bytes} bytes in {self._messages} messages; "
                    f"{topic} ({size} bytes) would exceed its {self.max_bytes} bytes"
                )
            try:
                cursor = self._conn.execute(
                    "INSERT INTO messages (topic, payload, readings) VALUES (?, ?, ?)",
                    (topic, payload, readings),
                )
            except sqlite3.Error as exc:
                raise SpoolError(f"cannot append to spool {self.path}: {exc}") from exc
            self._messages += 1
            self._readings += readings
            self._bytes += size
            return int(cursor.lastrowid or 0)

    def after(self, spool_id: int, limit: int) -> list[SpooledMessage]:
        """Up to ``limit`` messages with an id above ``spool_id``, oldest first."""
        with self._lock:
            try:
                rows = self._conn.execute(
                    "SELECT id, topic, payload, readings FROM messages WHERE id > ? "
                    "ORDER BY id LIMIT ?",
                    (spool_id, limit),
                ).fetchall()
            except sqlite3.Error as exc:
                raise SpoolError(f"cannot read spool {self.path}: {exc}") from exc
        return [SpooledMessage(i, t, bytes(p), r) for i, t, p, r in rows]

    def remove(self, spool_ids: list[int]) -> None:
        """Delete delivered messages (the broker acknowledged them), in one transaction."""
        if not spool_ids:
            return
        with self._lock:
            conn = self._conn
            messages = readings = size = 0
            try:
                conn.execute("BEGIN IMMEDIATE")
                for start in range(0, len(spool_ids), 500):
                    chunk = spool_ids[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    found = conn.execute(
                        "SELECT count(*), coalesce(sum(readings), 0), "
                        f"coalesce(sum(length(payload)), 0) FROM messages WHERE id IN ({marks})",
                        chunk,
                    ).fetchone()
                    conn.execute(f"DELETE FROM messages WHERE id IN ({marks})", chunk)
                    messages, readings, size = (
                        a + b for a, b in zip((messages, readings, size), found, strict=True)
                    )
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise SpoolError(
                    f"cannot remove delivered messages from {self.path}: {exc}"
                ) from exc
            self._messages -= messages
            self._readings -= readings
            self._bytes -= size

    def close(self) -> None:
        with self._lock:
            self._conn.close()
