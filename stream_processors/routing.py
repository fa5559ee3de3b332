"""Partition keys of validated readings on Kafka, and the records that carry them.

Readings are keyed ``{tenant}/{instrument}``: Kafka keeps one instrument's readings in order in
one partition, and the Faust worker that owns the partition owns the instrument's state.

Members of a peer group take their reference from each other's corrected values at the same
instant, so the whole group must be judged by one worker, in one order: their readings are keyed
``{tenant}/peers:{group}`` instead (``:`` is not allowed in identifiers, so no instrument key can
collide). A group is small (three to five instruments at one measuring point), so this costs no
balance.

One record carries the readings that one gateway message held for one key, in message order:
the readings of a group at the same instant then arrive together, and the worker completes
their peer references exactly as the embedded runner does for that message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from metrology.instrument import InstrumentSpec, ReferenceKind
from metrology.reading import Reading
from stream_processors.codec import CODEC_VERSION, StateCodecError, decode_reading, encode_reading

__all__ = [
    "PEER_KEY_MARK",
    "decode_readings_record",
    "encode_readings_record",
    "keyed_records",
    "readings_records",
    "routing_key",
]

PEER_KEY_MARK = "peers:"


def routing_key(spec: InstrumentSpec) -> str:
    """The Kafka key of the instrument's readings: the instrument, or its peer group."""
    if spec.reference.kind is ReferenceKind.PEER_GROUP and spec.reference.peer_group:
        return f"{spec.tenant}/{PEER_KEY_MARK}{spec.reference.peer_group}"
    return f"{spec.tenant}/{spec.instrument_id}"


def keyed_records(
    readings: Iterable[Reading], instruments: Mapping[str, InstrumentSpec]
) -> list[tuple[str, list[Reading]]]:
    """The readings of one message grouped by key (first-seen key order, message order within)."""
    records: dict[str, list[Reading]] = {}
    for reading in readings:
        key = routing_key(instruments[reading.instrument_id])
        bucket = records.get(key)
        if bucket is None:
            bucket = records[key] = []
        bucket.append(reading)
    return list(records.items())


def readings_records(
    instruments: Mapping[str, InstrumentSpec],
) -> Callable[[list[Reading]], list[tuple[str, dict[str, Any]]]]:
    """What ingest forwards for one message's readings: ``(key, record value)`` per key."""

    def records(readings: list[Reading]) -> list[tuple[str, dict[str, Any]]]:
        return [
            (key, encode_readings_record(key, part))
            for key, part in keyed_records(readings, instruments)
        ]

    return records


def encode_readings_record(key: str, readings: Iterable[Reading]) -> dict[str, Any]:
    """The value of one Kafka record: its key (again, for batch consumers) and its readings."""
    return {"v": CODEC_VERSION, "key": key, "readings": [encode_reading(r) for r in readings]}


def decode_readings_record(document: Mapping[str, Any]) -> tuple[str, list[Reading]]:
    if not isinstance(document, Mapping) or document.get("v") != CODEC_VERSION:
        raise StateCodecError(f"readings record: not a v{CODEC_VERSION} record: {document!r:.120}")
    try:
        return str(document["key"]), [decode_reading(r) for r in document["readings"]]
    except (KeyError, TypeError) as exc:
        raise StateCodecError(f"readings record: {type(exc).__name__}: {exc}") from exc
