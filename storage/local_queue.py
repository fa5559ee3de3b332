"""A durable local queue: a bounded FIFO of entries in one SQLite file, on disk before it returns.

Work that the next hop cannot take yet waits here: the pipeline's journal keeps the batches the
store could not take, and a gateway's spool keeps the messages the broker could not take. Both
need the same discipline, and this module is its one implementation:

- **Durable.** SQLite in WAL mode with ``synchronous=FULL``: :meth:`LocalQueue.append` returns
  only after its commit is fsynced, so an entry the caller acknowledges onwards survives a killed
  process and a power cut. :meth:`LocalQueue.remove` is committed the same way.
- **Ordered.** Entries come back oldest first (:meth:`~LocalQueue.oldest`, iteration,
  :meth:`~LocalQueue.after`), by an ``AUTOINCREMENT`` id that is never handed out twice.
- **Bounded.** ``max_bytes`` of entry bodies. An entry that does not fit is refused with
  :class:`~storage.errors.LocalQueueFull`: nothing is written and nothing already queued is
  dropped; the caller decides what a refusal means (the journal falls back to back-pressure, the
  spool counts the refused readings).
- **Small in memory.** Only the depth counters (:class:`QueueDepth`) are kept; entries are read
  back one page at a time. Once drained the file is vacuumed, so it does not keep its peak size.
- **Thread-safe.** One connection behind one lock; the bound is checked and the entry written
  under that lock, so concurrent appenders never exceed ``max_bytes`` together.
- **Versioned.** The file layout carries a version (SQLite's ``user_version``,
  :data:`LAYOUT_VERSION`) and every entry the format of its body, chosen by the owner. A file of
  another layout, or holding entries of a format the owner does not read, is refused with
  :class:`~storage.errors.LocalQueueVersionError` and left untouched.

File layout, version 1::

    CREATE TABLE entries (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,  -- order of arrival
        format INTEGER NOT NULL,  -- the owner's encoding of body (the journal's batch format)
        key    TEXT NOT NULL,     -- the owner's text key (the spool's MQTT topic; '' if none)
        items  INTEGER NOT NULL,  -- what the body counts for (readings), summed in the depth
        at     REAL NOT NULL,     -- the owner's time for the entry, Unix seconds (0 if none)
        body   BLOB NOT NULL      -- counted against max_bytes
    )

A file written before the layout carried a version (``user_version`` 0) holding exactly the
owner's :class:`LegacyTable` is upgraded to the current layout on opening, in one transaction,
once its entries are known to be of the owner's format.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from storage.errors import LocalQueueError, LocalQueueFull, LocalQueueVersionError

__all__ = [
    "LAYOUT_VERSION",
    "LegacyTable",
    "LocalQueue",
    "LocalQueueError",
    "LocalQueueFull",
    "LocalQueueVersionError",
    "QueueDepth",
    "QueuedEntry",
]

log = logging.getLogger(__name__)

LAYOUT_VERSION = 1
"""The file layout this code writes and reads (SQLite's ``user_version``)."""

_TABLE = "entries"
_COLUMNS = "id, format, key, items, at, body"
_CREATE = """
CREATE TABLE {table} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    format INTEGER NOT NULL,
    key TEXT NOT NULL,
    items INTEGER NOT NULL,
    at REAL NOT NULL,
    body BLOB NOT NULL
)
"""
_UPGRADING = "local_queue_upgrade"
_REMOVE_CHUNK = 500
"""Ids per ``IN (...)`` list: below SQLite's bound on host parameters."""
_PAGE = 64
"""Entries read per query while iterating."""


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """What the queue holds: entries, the items they count for, and bytes of bodies."""

    entries: int
    items: int
    bytes: int


@dataclass(frozen=True, slots=True)
class QueuedEntry:
    """One entry as read back: its id (order of arrival), its body and metadata."""

    id: int
    body: bytes
    key: str
    items: int
    at: float

    @property
    def size(self) -> int:
        """Bytes counted against ``max_bytes``."""
        return len(self.body)


@dataclass(frozen=True, slots=True)
class LegacyTable:
    """The table a queue file held before the layout carried a version, and how its rows map.

    ``select`` is the SQL select list giving, for one row of ``name``, the columns
    ``id, format, key, items, at, body`` of the current layout, in that order.
    """

    name: str
    select: str


class LocalQueue:
    """A durable, bounded, thread-safe FIFO of entries in one SQLite file (see the module).

    ``entry_format`` is written with every entry and is the only format accepted on opening;
    ``legacy`` names the table of an unversioned file this owner wrote before, to upgrade;
    ``name`` says what the queue is in error messages ("journal", "spool").
    """

    def __init__(
        self,
        path: str | Path,
        max_bytes: int,
        *,
        entry_format: int = 1,
        legacy: LegacyTable | None = None,
        name: str = "local queue",
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.entry_format = entry_format
        self.name = name
        self._legacy = legacy
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise LocalQueueError(f"cannot open {self._what}: {exc}") from exc
        try:
            self._entries, self._items, self._bytes = self._open(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    @property
    def _what(self) -> str:
        return f"{self.name} {self.path}"

    # --- opening ------------------------------------------------------------------------------

    def _open(self, conn: sqlite3.Connection) -> tuple[int, int, int]:
        """Check the file, create or upgrade its layout; the depth it holds."""
        try:
            self._inspect(conn)  # refuses before any pragma could change the file
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is fsynced before it returns, so an entry survives power loss, not
            # only a crash of this process.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                step = self._inspect(conn)  # again, now that no other opener can interleave
                if step == "create":
                    conn.execute(_CREATE.format(table=_TABLE))
                elif step == "upgrade":
                    self._upgrade(conn)
                if step != "open":
                    conn.execute(f"PRAGMA user_version = {LAYOUT_VERSION}")
                entries, items, size = conn.execute(
                    "SELECT count(*), coalesce(sum(items), 0), coalesce(sum(length(body)), 0) "
                    f"FROM {_TABLE}"
                ).fetchone()
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise LocalQueueError(f"cannot open {self._what}: {exc}") from exc
        return int(entries), int(items), int(size)

    def _inspect(self, conn: sqlite3.Connection) -> str:
        """What opening the file takes: "open", "create" or "upgrade". Reads only; refuses a
        file of another layout, or holding entries of another format."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master "
                "WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
            )
        }
        if version == LAYOUT_VERSION and tables == {_TABLE}:
            self._refuse_unknown_formats(conn, _TABLE)
            return "open"
        if version == 0 and not tables:
            return "create"
        legacy = self._legacy
        if version == 0 and legacy is not None and tables == {legacy.name}:
            self._refuse_unknown_formats(conn, f"(SELECT {legacy.select} FROM {legacy.name})")
            return "upgrade"
        found = ", ".join(sorted(tables)) or "no tables"
        raise LocalQueueVersionError(
            f"{self._what} has layout version {version} ({found}); this code reads layout "
            f"version {LAYOUT_VERSION} only (left untouched)"
        )

    def _refuse_unknown_formats(self, conn: sqlite3.Connection, source: str) -> None:
        """Refuse entries of another format in ``source`` (a table, or a legacy table's rows
        mapped to the current columns)."""
        formats = [
            str(value)
            for (value,) in conn.execute(
                f"WITH current ({_COLUMNS}) AS (SELECT * FROM {source}) "
                "SELECT DISTINCT format FROM current WHERE format != ? ORDER BY format",
                (self.entry_format,),
            )
        ]
        if formats:
            raise LocalQueueVersionError(
                f"{self._what} holds entries of format {', '.join(formats)}; this code reads "
                f"format {self.entry_format} only (left untouched)"
            )

    def _upgrade(self, conn: sqlite3.Connection) -> None:
        legacy = self._legacy
        assert legacy is not None
        conn.execute(_CREATE.format(table=_UPGRADING))
        conn.execute(
            f"INSERT INTO {_UPGRADING} ({_COLUMNS}) "
            f"SELECT {legacy.select} FROM {legacy.name} ORDER BY id"
        )
        conn.execute(f"DROP TABLE {legacy.name}")
        conn.execute(f"ALTER TABLE {_UPGRADING} RENAME TO {_TABLE}")
        log.info("%s: upgraded from its unversioned table %r", self._what, legacy.name)

    # --- depth --------------------------------------------------------------------------------

    @property
    def depth(self) -> QueueDepth:
        with self._lock:
            return QueueDepth(self._entries, self._items, self._bytes)

    @property
    def empty(self) -> bool:
        return self._entries == 0

    def fits(self, size: int) -> bool:
        """Whether an entry of ``size`` bytes would be taken now under ``max_bytes``."""
        return self._bytes + size <= self.max_bytes

    # --- append, read, remove -----------------------------------------------------------------

    def append(self, body: bytes, *, key: str = "", items: int = 0, at: float = 0.0) -> int:
        """Append one entry; on return it is on disk (fsynced). Returns its id.

        Raises :class:`~storage.errors.LocalQueueFull` (nothing written, nothing dropped) when
        it does not fit under ``max_bytes``.
        """
        size = len(body)
        with self._lock:
            if self._bytes + size > self.max_bytes:
                raise LocalQueueFull(
                    f"{self._what} holds {self._bytes} bytes in {self._entries} entries; "
                    f"{key or 'an entry'} of {size} bytes would exceed its {self.max_bytes} bytes"
                )
            try:
                cursor = self._conn.execute(
                    f"INSERT INTO {_TABLE} (format, key, items, at, body) VALUES (?, ?, ?, ?, ?)",
                    (self.entry_format, key, items, at, body),
                )
            except sqlite3.Error as exc:
                raise LocalQueueError(f"cannot append to {self._what}: {exc}") from exc
            self._entries += 1
            self._items += items
            self._bytes += size
            return int(cursor.lastrowid or 0)

    def after(self, entry_id: int, limit: int) -> list[QueuedEntry]:
        """Up to ``limit`` entries with an id above ``entry_id``, oldest first."""
        with self._lock:
            try:
                rows = self._conn.execute(
                    f"SELECT id, body, key, items, at FROM {_TABLE} WHERE id > ? "
                    "ORDER BY id LIMIT ?",
                    (entry_id, limit),
                ).fetchall()
            except sqlite3.Error as exc:
                raise LocalQueueError(f"cannot read {self._what}: {exc}") from exc
        return [QueuedEntry(i, bytes(body), key, items, at) for i, body, key, items, at in rows]

    def oldest(self) -> QueuedEntry | None:
        """The oldest entry, or None when the queue is empty."""
        page = self.after(0, 1)
        return page[0] if page else None

    def __iter__(self) -> Iterator[QueuedEntry]:
        """Every entry, oldest first, read a page at a time (entries appended meanwhile too)."""
        last = 0
        while page := self.after(last, _PAGE):
            yield from page
            last = page[-1].id

    def remove(self, *entries: QueuedEntry | int) -> None:
        """Delete entries (given as entries or ids) in one transaction, fsynced like an append.

        Ids no longer in the queue are ignored, so removing twice is harmless.
        """
        ids = [entry if isinstance(entry, int) else entry.id for entry in entries]
        if not ids:
            return
        with self._lock:
            conn = self._conn
            removed = [0, 0, 0]
            try:
                conn.execute("BEGIN IMMEDIATE")
                for start in range(0, len(ids), _REMOVE_CHUNK):
                    chunk = ids[start : start + _REMOVE_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    found = conn.execute(
                        "SELECT count(*), coalesce(sum(items), 0), coalesce(sum(length(body)), 0) "
                        f"FROM {_TABLE} WHERE id IN ({marks})",
                        chunk,
                    ).fetchone()
                    conn.execute(f"DELETE FROM {_TABLE} WHERE id IN ({marks})", chunk)
                    removed = [a + b for a, b in zip(removed, found, strict=True)]
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise LocalQueueError(f"cannot remove entries from {self._what}: {exc}") from exc
            self._entries -= removed[0]
            self._items -= removed[1]
            self._bytes -= removed[2]
            if self._entries == 0 and removed[0]:
                self._give_back_space()

    def _give_back_space(self) -> None:
        """Shrink the drained file (it would otherwise keep its peak size on disk)."""
        try:
            self._conn.execute("VACUUM")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            # The removal is committed; only the space waits for the next drain (VACUUM needs
            # free space for a copy, which a full disk may not have).
            log.warning("%s: drained, but its space is not given back yet: %s", self._what, exc)

    # --- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> LocalQueue:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
