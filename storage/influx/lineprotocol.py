"""InfluxDB line protocol: escaping, numbers, exact nanosecond timestamps, one line.

The bytes are those :class:`influxdb_client.Point` produces for the same point (tags and fields
sorted by key, whole floats without ``.0``, NaN and infinities omitted), checked by a property
test. Building a ``Point`` per reading costs several times the CPU of the hot path in
:mod:`storage.influx.points` (``python -m calstream.evaluation.sink_bench --serialiser``).

Line protocol reference: https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

_ESCAPE_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_ESCAPE_KEY = str.maketrans(
    {",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"}
)
_ESCAPE_STRING = str.maketrans({'"': r"\"", "\\": "\\\\"})

FieldValue = float | int | str | bool | None


def escape_measurement(name: str) -> str:
    return name.translate(_ESCAPE_MEASUREMENT)


def escape_key(key: str) -> str:
    """A tag key or field key."""
    return key.translate(_ESCAPE_KEY)


def escape_tag_value(value: str) -> str:
    escaped = value.translate(_ESCAPE_KEY)
    # A trailing backslash would escape the separator after it.
    return escaped + " " if escaped.endswith("\\") else escaped


def quote_string(value: str) -> str:
    """A string field value, quoted."""
    return '"' + value.translate(_ESCAPE_STRING) + '"'


def format_float(value: float) -> str | None:
    """A float field value; None for NaN and infinities, which are never sent."""
    if not math.isfinite(value):
        return None
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def nanoseconds(ts: float) -> int:
    """Epoch seconds to integer nanoseconds, exactly.

    ``round(ts * 1e9)`` is not exact: the product (about 1.8e18) is rounded to a multiple of 256,
    so two readings 238 ns apart (adjacent floats near 2026) could share a timestamp. The
    fractional part of a float is exact, and ``frac * 1e9`` is within a nanosecond of the truth,
    so distinct reading times stay distinct timestamps.
    """
    whole = math.floor(ts)
    return whole * 1_000_000_000 + round((ts - whole) * 1e9)


_TAG_SETS: dict[tuple[tuple[str, str | None], ...], str] = {}
_KEYS: dict[str, str] = {}
_CACHE_LIMIT = 100_000


def tag_set(tags: Mapping[str, str | None]) -> str:
    """``,key=value,...`` sorted by key; empty and None values omitted (cached: few series)."""
    cache_key = tuple(tags.items())
    text = _TAG_SETS.get(cache_key)
    if text is None:
        parts = []
        for key in sorted(tags):
            value = tags[key]
            if value is None:
                continue
            escaped = escape_tag_value(value)
            if escaped:
                parts.append(f"{escape_key(key)}={escaped}")
        text = "," + ",".join(parts) if parts else ""
        if len(_TAG_SETS) >= _CACHE_LIMIT:
            _TAG_SETS.clear()
        _TAG_SETS[cache_key] = text
    return text


def _key(key: str) -> str:
    """``escaped_key=`` (cached: a schema has few field keys)."""
    text = _KEYS.get(key)
    if text is None:
        if len(_KEYS) >= _CACHE_LIMIT:
            _KEYS.clear()
        text = _KEYS[key] = escape_key(key) + "="
    return text


def field_text(key: str, value: FieldValue) -> str | None:
    """``key=value`` with the value's line-protocol type, or None when it is not sent."""
    kind = type(value)
    if kind is float:
        if value - value != 0:  # type: ignore[operator]  # NaN or infinite: never sent
            return None
        number = repr(value)
        return _key(key) + (number[:-2] if number[-2:] == ".0" else number)
    if kind is str:
        return _key(key) + quote_string(value)  # type: ignore[arg-type]
    if kind is int:
        return f"{_key(key)}{value}i"
    if value is None:
        return None
    if kind is bool:
        return _key(key) + ("true" if value else "false")
    raise TypeError(f"field {key!r}: {kind.__name__} is not a line-protocol field type")


def field_set(fields: Mapping[str, FieldValue]) -> str:
    """``key=value,...`` sorted by key; None, NaN and infinities omitted.

    :func:`field_text` inlined for the common types: snapshots carry some 30 fields each.
    """
    parts: list[str] = []
    add = parts.append
    keys = _KEYS
    for key in sorted(fields):
        value = fields[key]
        kind = type(value)
        if kind is float:
            if value - value == 0:  # type: ignore[operator]  # finite (NaN, inf: not sent)
                number = repr(value)
                add((keys.get(key) or _key(key)) + (number[:-2] if number[-2:] == ".0" else number))
        elif kind is str:
            add((keys.get(key) or _key(key)) + quote_string(value))  # type: ignore[arg-type]
        elif value is not None:
            text = field_text(key, value)
            if text is not None:
                add(text)
    return ",".join(parts)


def line(
    measurement: str, tags: Mapping[str, str | None], fields: Mapping[str, FieldValue], ns: int
) -> str | None:
    """One point; None when no field is left to send (line protocol needs one)."""
    written = field_set(fields)
    if not written:
        return None
    return f"{escape_measurement(measurement)}{tag_set(tags)} {written} {ns}"


def join_lines(lines: Iterable[str]) -> str:
    return "\n".join(lines)
