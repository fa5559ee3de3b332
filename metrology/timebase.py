"""Time in the domain is UTC epoch seconds (float); these helpers convert at the edges."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

SECONDS_PER_DAY = 86_400.0
SECONDS_PER_HOUR = 3_600.0
SECONDS_PER_YEAR = 365.25 * SECONDS_PER_DAY


def to_epoch(moment: datetime) -> float:
    """Epoch seconds of an aware datetime (a naive one is refused: it has no UTC meaning)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: a UTC offset is required")
    return moment.timestamp()


def to_datetime(epoch_s: float) -> datetime:
    """The aware UTC datetime of epoch seconds."""
    return datetime.fromtimestamp(epoch_s, tz=UTC)


_MIN_FAST = -62_135_596_800 + 86_400  # 0001-01-02: clear of datetime's limits
_MAX_FAST = 253_402_300_799 - 86_400  # 9999-12-30


@lru_cache(maxsize=4096)
def _day_prefix(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, tz=UTC).strftime("%Y-%m-%dT")


def iso(epoch_s: float) -> str:
    """ISO 8601 text in UTC with millisecond precision and a ``Z`` suffix.

    Whole seconds (every simulated and most gateway timestamps) are formatted from a cached day
    prefix, about five times faster than through ``datetime``; the text is the same.
    """
    whole = int(epoch_s)
    if whole == epoch_s and _MIN_FAST < whole < _MAX_FAST:
        day, second = divmod(whole, 86_400)
        hour, rest = divmod(second, 3600)
        minute, sec = divmod(rest, 60)
        return f"{_day_prefix(day)}{hour:02d}:{minute:02d}:{sec:02d}.000Z"
    return to_datetime(epoch_s).isoformat(timespec="milliseconds").replace("+00:00", "Z")
