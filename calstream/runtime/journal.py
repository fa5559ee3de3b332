"""The pipeline's local journal: batches the store could not take, kept on disk in order.

While the store is unavailable (``StorageError``), the pipeline appends each processed batch to
this journal, waits for the append to be on disk (SQLite ``synchronous=FULL``: the commit is
fsynced), and only then acknowledges the batch's messages to the broker. While the journal holds
anything, new batches are appended behind it, so the store receives batches in the order they
were processed. Once the store answers, the pipeline replays the journal oldest first and
removes an entry only after the store's write of it returned; a crash between the two replays
that entry once more, which the store's idempotent writes absorb.

Memory stays bounded: an entry is read back one at a time; nothing but the depth counters is
kept in memory. The journal is bounded by ``max_bytes`` of encoded batches: a batch that does
not fit is refused (:class:`JournalFull`) and the pipeline falls back to back-pressure (it stops
acknowledging; the broker keeps the messages).

File: ``journal.sqlite`` in the journal folder (``CALSTREAM_JOURNAL_DIR``, default
``<work_dir>/journal``). Each entry is one row holding a batch in the format below.

Entry format, version 1 (:data:`JOURNAL_FORMAT`): UTF-8 JSON, one object per batch::

    {"v": 1,
     "readings": [[<Reading's 10 fields>, <Assessment's 13 fields, status as text>], ...],
     "snapshots": [{HealthSnapshot fields; status and conditions as text}, ...],
     "changes": [{StatusChange fields; previous and status as text}, ...],
     "dead_letters": [{DeadLetter fields; reason as text}, ...]}

Fields appear in the order of the named tuples (:class:`~metrology.reading.Reading`,
:class:`~metrology.assessment.Assessment`). Floats are written with Python's shortest exact
``repr``; non-finite numbers use the ``NaN``/``Infinity`` tokens of Python's :mod:`json`. An
entry of an unknown version is never guessed at: opening the journal raises
:class:`JournalError` and leaves the file untouched.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calstream.errors import JournalError, JournalFull
from metrology.assessment import Assessment, HealthSnapshot, StatusChange
from metrology.batch import OutputBatch
from metrology.health import Status
from metrology.reading import Reading
from metrology.wire import DeadLetter, RejectReason

__all__ = [
    "JOURNAL_FILE",
    "JOURNAL_FORMAT",
    "Journal",
    "JournalDepth",
    "JournalEntry",
    "JournalError",
    "JournalFull",
    "decode_batch",
    "encode_batch",
]

JOURNAL_FORMAT = 1
JOURNAL_FILE = "journal.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    format INTEGER NOT NULL,
    readings INTEGER NOT NULL,
    received_at REAL NOT NULL,
    body BLOB NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class JournalDepth:
    """What the journal holds: batches, readings in them, and encoded bytes."""

    batches: int
    readings: int
    bytes: int


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journalled batch, as read back for replay."""

    id: int
    batch: OutputBatch
    readings: int
    received_at: float
    """Arrival of the batch's oldest message (for the received-to-stored latency)."""
    size: int


# --- the entry format -----------------------------------------------------------------------

_DUMPS = json.JSONEncoder(separators=(",", ":"), allow_nan=True, ensure_ascii=False).encode


def encode_batch(batch: OutputBatch) -> bytes:
    """``batch`` in journal format :data:`JOURNAL_FORMAT` (see the module docstring)."""
    document = {
        "v": JOURNAL_FORMAT,
        "readings": [[*r, *a[:12], a[12].value] for r, a in batch.readings],
        "snapshots": [
            {
                "instrument_id": s.instrument_id,
                "tenant": s.tenant,
                "site": s.site,
                "status": s.status.value,
                "conditions": [c.value for c in s.conditions],
                "reasons": list(s.reasons),
                "evaluated_at": s.evaluated_at,
                "last_reading_at": s.last_reading_at,
                "numbers": s.numbers,
            }
            for s in batch.snapshots
        ],
        "changes": [
            {
                "instrument_id": c.instrument_id,
                "tenant": c.tenant,
                "site": c.site,
                "ts": c.ts,
                "previous": None if c.previous is None else c.previous.value,
                "status": c.status.value,
                "reasons": list(c.reasons),
                "numbers": c.numbers,
            }
            for c in batch.changes
        ],
        "dead_letters": [
            {
                "received_at": d.received_at,
                "topic": d.topic,
                "reason": d.reason.value,
                "detail": d.detail,
                "excerpt": d.excerpt,
                "count": d.count,
                "tenant": d.tenant,
                "instrument_id": d.instrument_id,
                "seq": d.seq,
            }
            for d in batch.dead_letters
        ],
    }
    return _DUMPS(document).encode("utf-8")


_READING_FIELDS = len(Reading._fields)
_new_reading = Reading._make
_new_assessment = Assessment._make
_STATUS = {status.value: status for status in Status}


def _pair(row: list[Any]) -> tuple[Reading, Assessment]:
    n = _READING_FIELDS
    assessment = row[n:]
    assessment[12] = _STATUS[assessment[12]]
    return _new_reading(row[:n]), _new_assessment(assessment)


def decode_batch(body: bytes) -> OutputBatch:
    """The batch :func:`encode_batch` wrote; :class:`JournalError` for another version or an
    entry that is not a valid batch (never guessed at)."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise JournalError(f"journal entry is not JSON: {exc}") from exc
    version = document.get("v") if isinstance(document, dict) else None
    if version != JOURNAL_FORMAT:
        raise JournalError(f"journal entry format {version!r} is not {JOURNAL_FORMAT}")
    try:
        return _batch_of(document)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise JournalError(f"journal entry is not a valid format-1 batch: {exc!r}") from exc


def _batch_of(document: dict[str, Any]) -> OutputBatch:
    return OutputBatch(
        readings=[_pair(row) for row in document["readings"]],
        snapshots=[
            HealthSnapshot(
                instrument_id=s["instrument_id"],
                tenant=s["tenant"],
                site=s["site"],
                status=Status(s["status"]),
                conditions=tuple(Status(c) for c in s["conditions"]),
                reasons=tuple(s["reasons"]),
                evaluated_at=s["evaluated_at"],
                last_reading_at=s["last_reading_at"],
                numbers=s["numbers"],
            )
            for s in document["snapshots"]
        ],
        changes=[
            StatusChange(
                instrument_id=c["instrument_id"],
                tenant=c["tenant"],
                site=c["site"],
                ts=c["ts"],
                previous=None if c["previous"] is None else Status(c["previous"]),
                status=Status(c["status"]),
                reasons=tuple(c["reasons"]),
                numbers=c["numbers"],
            )
            for c in document["changes"]
        ],
        dead_letters=[
            DeadLetter(
                received_at=d["received_at"],
                topic=d["topic"],
                reason=RejectReason(d["reason"]),
                detail=d["detail"],
                excerpt=d["excerpt"],
                count=d["count"],
                tenant=d["tenant"],
                instrument_id=d["instrument_id"],
                seq=d["seq"],
            )
            for d in document["dead_letters"]
        ],
    )


# --- the journal file -----------------------------------------------------------------------


class Journal:
    """An on-disk FIFO of encoded batches, bounded by ``max_bytes`` of entries.

    One writer (the pipeline's writing thread); :attr:`depth` may be read from any thread.
    """

    def __init__(self, folder: Path, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.path = folder / JOURNAL_FILE
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is fsynced before it returns, so an acknowledged batch survives
            # power loss, not only a crash of this process.
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute(_SCHEMA)
            batches, readings, size, formats = self._conn.execute(
                "SELECT count(*), coalesce(sum(readings), 0), coalesce(sum(length(body)), 0), "
                "group_concat(DISTINCT format) FROM entries"
            ).fetchone()
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open journal {self.path}: {exc}") from exc
        if formats is not None and formats != str(JOURNAL_FORMAT):
            self._conn.close()
            raise JournalError(
                f"journal {self.path} holds entries of format {formats}; this version reads "
                f"format {JOURNAL_FORMAT} only (left untouched)"
            )
        self._batches, self._readings, self._bytes = int(batches), int(readings), int(size)

    @property
    def depth(self) -> JournalDepth:
        return JournalDepth(self._batches, self._readings, self._bytes)

    @property
    def empty(self) -> bool:
        return self._batches == 0

    def fits(self, size: int) -> bool:
        """Whether an entry of ``size`` encoded bytes can be appended under ``max_bytes``."""
        return self._bytes + size <= self.max_bytes

    def append(self, body: bytes, readings: int, received_at: float) -> None:
        """Append an encoded batch (:func:`encode_batch`); on return it is on disk.

        Raises :class:`JournalFull` (nothing written) when it does not fit under ``max_bytes``.
        """
        size = len(body)
        if not self.fits(size):
            raise JournalFull(
                f"journal {self.path} holds {self._bytes} bytes; a batch of {size} bytes "
                f"would exceed its {self.max_bytes} bytes"
            )
        with self._lock:
            try:
                self._conn.execute(
                    "INSERT INTO entries (format, readings, received_at, body) VALUES (?, ?, ?, ?)",
                    (JOURNAL_FORMAT, readings, received_at, body),
                )
            except sqlite3.Error as exc:
                raise JournalError(f"cannot append to journal {self.path}: {exc}") from exc
            self._batches += 1
            self._readings += readings
            self._bytes += size

    def oldest(self) -> JournalEntry | None:
        """The oldest entry, decoded (one entry in memory at a time), or None when empty."""
        with self._lock:
            try:
                row = self._conn.execute(
                    "SELECT id, readings, received_at, body FROM entries ORDER BY id LIMIT 1"
                ).fetchone()
            except sqlite3.Error as exc:
                raise JournalError(f"cannot read journal {self.path}: {exc}") from exc
        if row is None:
            return None
        entry_id, readings, received_at, body = row
        return JournalEntry(entry_id, decode_batch(body), readings, received_at, len(body))

    def remove(self, entry: JournalEntry) -> None:
        """Delete an entry the store has taken (fsynced like an append)."""
        with self._lock:
            try:
                deleted = self._conn.execute(
                    "DELETE FROM entries WHERE id = ?", (entry.id,)
                ).rowcount
            except sqlite3.Error as exc:
                raise JournalError(
                    f"cannot remove entry {entry.id} from {self.path}: {exc}"
                ) from exc
            if deleted:
                self._batches -= 1
                self._readings -= entry.readings
                self._bytes -= entry.size
            if self._batches == 0:
                # Give the disk back once drained: the file would otherwise keep its peak size.
                self._conn.execute("VACUUM")
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
