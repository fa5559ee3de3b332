"""Time in the domain is UTC epoch seconds (float); these helpers convert at the edges."""

from __future__ import annotations

from datetime import UTC, datetime

SECONDS_PER_DAY = 86_400.0
SECONDS_PER_HOUR = 3_600.0


def to_epoch(moment: datetime) -> float:
    """Epoch seconds of an aware datetime (naive datetimes are refused: they have no UTC meaning)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: a UTC offset is required")
    return moment.timestamp()


def to_datetime(epoch_s: float) -> datetime:
    """The aware UTC datetime of epoch seconds."""
    return datetime.fromtimestamp(epoch_s, tz=UTC)


def iso(epoch_s: float) -> str:
    """ISO 8601 text in UTC with millisecond precision and a ``Z`` suffix."""
    return to_datetime(epoch_s).isoformat(timespec="milliseconds").replace("+00:00", "Z")
