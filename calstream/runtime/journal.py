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
``<work_dir>/journal``), a :class:`storage.local_queue.LocalQueue` (its layout, durability and
bound are that module's): each entry holds one batch in the format below, its readings as the
entry's items and the arrival of its oldest message as the entry's time. A journal written before
the journal was such a queue (its ``entries`` table without a layout version) is upgraded when
opened, its entries kept in order.

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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calstream.errors import JournalError, JournalFull
from metrology.assessment import Assessment, HealthSnapshot, StatusChange
from metrology.batch import OutputBatch
from metrology.health import Status
from metrology.reading import Reading
from metrology.wire import DeadLetter, RejectReason
from storage.local_queue import LegacyTable, LocalQueue, LocalQueueError, LocalQueueFull

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

_TODAYS_TABLE = LegacyTable("entries", "id, format, '', readings, received_at, body")
"""The journal's table before it was a :class:`~storage.local_queue.LocalQueue` (upgraded on
opening): ``entries (id, format, readings, received_at, body)``."""


@contextmanager
def _journal_errors() -> Iterator[None]:
    """The local queue's errors as the journal's (the pipeline and the service handle those)."""
    try:
        yield
    except LocalQueueFull as exc:
        raise JournalFull(str(exc)) from exc
    except LocalQueueError as exc:
        raise JournalError(str(exc)) from exc


class Journal:
    """An on-disk FIFO of encoded batches, bounded by ``max_bytes`` of entries: a
    :class:`~storage.local_queue.LocalQueue` of entries in format :data:`JOURNAL_FORMAT` (its
    key unused, its items the batch's readings, its time the batch's ``received_at``).

    Safe from any thread (the queue's own lock): the pipeline's writer appends, its replay
    thread reads and removes, metrics read :attr:`depth`.
    """

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.path = folder / JOURNAL_FILE
        with _journal_errors():
            self._queue = LocalQueue(
                self.path,
                max_bytes,
                entry_format=JOURNAL_FORMAT,
                legacy=_TODAYS_TABLE,
                name="journal",
            )

    @property
    def max_bytes(self) -> int:
        return self._queue.max_bytes

    @property
    def depth(self) -> JournalDepth:
        depth = self._queue.depth
        return JournalDepth(depth.entries, depth.items, depth.bytes)

    @property
    def empty(self) -> bool:
        return self._queue.empty

    def fits(self, size: int) -> bool:
        """Whether an entry of ``size`` encoded bytes can be appended under ``max_bytes``."""
        return self._queue.fits(size)

    def append(self, body: bytes, readings: int, received_at: float) -> None:
        """Append an encoded batch (:func:`encode_batch`); on return it is on disk.

        Raises :class:`JournalFull` (nothing written) when it does not fit under ``max_bytes``.
        """
        with _journal_errors():
            self._queue.append(body, items=readings, at=received_at)

    def oldest(self) -> JournalEntry | None:
        """The oldest entry, decoded (one entry in memory at a time), or None when empty."""
        with _journal_errors():
            entry = self._queue.oldest()
        if entry is None:
            return None
        return JournalEntry(entry.id, decode_batch(entry.body), entry.items, entry.at, entry.size)

    def remove(self, entry: JournalEntry) -> None:
        """Delete an entry the store has taken (fsynced like an append)."""
        with _journal_errors():
            self._queue.remove(entry.id)

    def close(self) -> None:
        self._queue.close()
