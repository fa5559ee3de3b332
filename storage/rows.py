"""Domain values to SQL parameter tuples (and back), in the column order of :mod:`storage.schema`.

The readings path is the hot one: one narrow ``readings`` row per reading, plus a ``residuals``
row for the readings that carry drift numbers (about half of them in a typical fleet). Rows are
plain tuples of exact ``str``/``float``/``int``/``None``: :mod:`sqlite3` binds those directly,
while a :class:`Status` member (a ``str`` subclass) would go through its adaptation lookups on
every row, so the status is bound as its plain text.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from metrology.assessment import Assessment, HealthSnapshot, StatusChange
from metrology.health import Status
from metrology.reading import Reading
from metrology.wire import DeadLetter, RejectReason

# The identity (instrument_id, ts, seq) comes from the Reading (Reading[3], [4], [7]);
# value from Reading[5]; corrected, certificate_id from Assessment[3:5]; status Assessment[12].
READING_COLUMNS = (
    "instrument_id", "ts", "seq", "value", "corrected", "certificate_id", "status",
)  # fmt: skip
# Assessment[5:12] = reference, residual, u_residual, ewma, cusum_high, cusum_low, drift_rate
RESIDUAL_NUMBERS = Assessment._fields[5:12]
RESIDUAL_COLUMNS = ("instrument_id", "ts", "seq", *RESIDUAL_NUMBERS)
assert RESIDUAL_NUMBERS == (
    "reference", "residual", "u_residual", "ewma", "cusum_high", "cusum_low", "drift_rate",
)  # fmt: skip
assert Reading._fields[3:8] == ("instrument_id", "ts", "value", "unit", "seq")
assert Assessment._fields[3:5] == ("corrected", "certificate_id")
assert Assessment._fields[12] == "status"

_NO_NUMBERS: tuple[None, ...] = (None,) * len(RESIDUAL_NUMBERS)
_STATUS_TEXT: dict[Any, str] = {s: s.value for s in Status}

STATE_NUMBER_COLUMNS = (
    "residual",
    "u_residual",
    "drift_rate",
    "predicted_oot_at",
    "probability_of_conformity",
    "due_at",
    "first_drift_at",
)
"""Keys of :attr:`HealthSnapshot.numbers` also stored as REAL columns of ``instrument_state``."""

STATE_COLUMNS = (
    "instrument_id", "tenant", "site", "status", "conditions", "reasons", "evaluated_at",
    "last_reading_at", "numbers", *STATE_NUMBER_COLUMNS,
)  # fmt: skip

ALERT_COLUMNS = (
    "tenant", "site", "instrument_id", "ts", "previous", "status", "reasons", "numbers",
)  # fmt: skip

DEAD_LETTER_COLUMNS = (
    "received_at", "topic", "tenant", "instrument_id", "seq", "reason", "detail", "excerpt",
    "count",
)  # fmt: skip
DEAD_LETTER_KEYED_COLUMNS = (*DEAD_LETTER_COLUMNS, "dedup_key")
"""The columns written: the dead letter and its :func:`dead_letter_rows` key."""


def reading_rows(
    readings: Iterable[tuple[Reading, Assessment]],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Rows of ``readings`` (:data:`READING_COLUMNS`) and ``residuals`` (:data:`RESIDUAL_COLUMNS`).

    A reading gets a ``residuals`` row when any of its drift numbers is known: a residual (then
    all of them may be), or, for a late reading the detectors skip, only its reference. Nothing
    the wide version-1 row held is lost.
    """
    rows: list[tuple[Any, ...]] = []
    residuals: list[tuple[Any, ...]] = []
    add_row, add_residual, status_text = rows.append, residuals.append, _STATUS_TEXT.get
    for r, a in readings:
        status = a[12]
        add_row((r[3], r[4], r[7], r[5], a[3], a[4], status_text(status, status)))
        numbers = a[5:12]
        if numbers != _NO_NUMBERS:
            add_residual((r[3], r[4], r[7]) + numbers)  # noqa: RUF005 (faster than unpacking)
    return rows, residuals


_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json(value: Mapping[str, Any] | Sequence[Any]) -> str:
    """Standard JSON: SQLite's json functions and Grafana refuse ``NaN``/``Infinity`` (-> null)."""
    try:
        return _ENCODE(value)
    except ValueError:  # a non-finite number somewhere: the rare path
        if isinstance(value, Mapping):
            return _ENCODE({k: _finite(v) for k, v in value.items()})
        return _ENCODE([_finite(v) for v in value])


@lru_cache(maxsize=1024)
def _conditions_json(conditions: tuple[Status, ...]) -> str:
    # Few distinct combinations occur, and there is one snapshot per instrument per batch.
    return _ENCODE([c.value for c in conditions])


def _number(value: Any) -> float | None:
    """A finite real number, or None (text, missing and non-finite values)."""
    if type(value) is float:
        return value if math.isfinite(value) else None
    if type(value) is int:
        return float(value)
    return None


def snapshot_row(s: HealthSnapshot) -> tuple[Any, ...]:
    get = s.numbers.get
    return (
        s.instrument_id,
        s.tenant,
        s.site,
        s.status.value,
        _conditions_json(s.conditions),
        to_json(s.reasons),
        s.evaluated_at,
        s.last_reading_at,
        to_json(s.numbers),
        *[_number(get(key)) for key in STATE_NUMBER_COLUMNS],
    )


def change_row(c: StatusChange) -> tuple[Any, ...]:
    return (
        c.tenant,
        c.site,
        c.instrument_id,
        c.ts,
        None if c.previous is None else c.previous.value,
        c.status.value,
        to_json(c.reasons),
        to_json(c.numbers),
    )


def dead_letter_row(d: DeadLetter) -> tuple[Any, ...]:
    return (
        d.received_at,
        d.topic,
        d.tenant,
        d.instrument_id,
        d.seq,
        d.reason.value,
        d.detail,
        d.excerpt,
        d.count,
    )


def dead_letter_rows(dead_letters: Iterable[DeadLetter]) -> list[tuple[Any, ...]]:
    """Rows of :data:`DEAD_LETTER_KEYED_COLUMNS`: each dead letter with its de-duplication key.

    The key is a digest of every field (arrival time, topic, reason, detail, excerpt, count,
    tenant, instrument, sequence) and the occurrence of that same content within the batch
    (``:0``, ``:1``, ...). Writing the same batch again (a retried write, or a re-sent batch
    whose first write committed but whose answer was lost) therefore stores nothing new, while
    two identical rejections in one batch both stay. A message the broker re-delivers after a
    crash arrives again (another ``received_at``) and is stored again: it was received twice.
    """
    rows: list[tuple[Any, ...]] = []
    seen: dict[str, int] = {}
    for d in dead_letters:
        row = dead_letter_row(d)
        digest = hashlib.sha256(_ENCODE([repr(row[0]), *row[1:]]).encode()).hexdigest()
        occurrence = seen.get(digest, 0)
        seen[digest] = occurrence + 1
        rows.append((*row, f"{digest[:40]}:{occurrence}"))
    return rows


# --- back to domain values (queries) ---


def snapshot_from_row(row: tuple[Any, ...]) -> HealthSnapshot:
    instrument_id, tenant, site, status, conditions, reasons, evaluated_at, last, numbers = row[:9]
    return HealthSnapshot(
        instrument_id=instrument_id,
        tenant=tenant,
        site=site,
        status=Status(status),
        conditions=tuple(Status(c) for c in json.loads(conditions)),
        reasons=tuple(json.loads(reasons)),
        evaluated_at=evaluated_at,
        last_reading_at=last,
        numbers=json.loads(numbers),
    )


def change_from_row(row: tuple[Any, ...]) -> StatusChange:
    tenant, site, instrument_id, ts, previous, status, reasons, numbers = row
    return StatusChange(
        instrument_id=instrument_id,
        tenant=tenant,
        site=site,
        ts=ts,
        previous=None if previous is None else Status(previous),
        status=Status(status),
        reasons=tuple(json.loads(reasons)),
        numbers=json.loads(numbers),
    )


def dead_letter_from_row(row: tuple[Any, ...]) -> DeadLetter:
    received_at, topic, tenant, instrument_id, seq, reason, detail, excerpt, count = row
    return DeadLetter(
        received_at=received_at,
        topic=topic,
        reason=RejectReason(reason),
        detail=detail,
        excerpt=excerpt,
        count=count,
        tenant=tenant,
        instrument_id=instrument_id,
        seq=seq,
    )
