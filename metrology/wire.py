"""The wire contract: MQTT topics and the JSON payload v1, shared by edge gateways and ingest.

Topics carry the tenant, so a broker ACL can confine each gateway to its tenant's namespace::

    calstream/v1/{tenant}/{site}/{gateway}/readings     readings, payload v1 (below)
    calstream/v1/{tenant}/alerts                         status-change events of the tenant

Payload v1 is one JSON object carrying a batch of readings::

    {"v": 1, "tenant": "acme", "site": "plant-a", "gateway": "gw-01",
     "readings": [{"instrument": "acme-pa-TT-001", "ts": "2026-03-01T12:00:00.000Z",
                   "value": 21.503, "unit": "degC", "seq": 4711,
                   "reference": {"value": 21.500, "u": 0.010}}]}

``seq`` is the gateway's sequence number of the reading (so re-delivery is harmless);
``reference`` is optional (a check standard or a co-located reference instrument, with its
standard uncertainty, in the reading's unit). Timestamps are ISO 8601 in UTC (``Z`` or
``+00:00``). ``docs/wire-contract.md`` has the full reference.

This module is what gateways and ingest share: topics, limits, the refusal reasons, dead
letters and the encoding. Decoding lives with ingest (:mod:`ingest.decoders`, one module per
wire format); it is strict and never raises on input: every reading is either returned as a
:class:`~metrology.reading.Reading` or rejected with a :class:`Rejection` naming a precise
:class:`RejectReason`. One bad reading does not reject the other readings of its message.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from metrology.assessment import StatusChange
from metrology.reading import Reading
from metrology.timebase import iso

PAYLOAD_VERSION = 1
TOPIC_ROOT = "calstream/v1"
READINGS_SUBSCRIPTION = f"{TOPIC_ROOT}/+/+/+/readings"
MAX_PAYLOAD_BYTES = 256 * 1024
"""Larger messages are refused unread (a documented limit; batch 1,000 readings or fewer)."""
MAX_READINGS_PER_MESSAGE = 2_000
MAX_IDENTIFIER_LENGTH = 64
EXCERPT_BYTES = 200
IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
"""Identifiers (tenant, site, gateway, instrument): no MQTT wildcards, slashes or control chars."""
MAX_SEQUENCE = 2**63 - 1


class RejectReason(StrEnum):
    """Why an input was refused. Each value is stored with the dead letter and counted.

    ``docs/wire-contract.md`` has the table of every reason and what it means.
    """

    OVERSIZED_PAYLOAD = "oversized_payload"
    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    DUPLICATE_KEY = "duplicate_key"
    UNSUPPORTED_VERSION = "unsupported_version"
    BAD_TOPIC = "bad_topic"
    TENANT_MISMATCH = "tenant_mismatch"
    SOURCE_MISMATCH = "source_mismatch"
    EMPTY_BATCH = "empty_batch"
    TOO_MANY_READINGS = "too_many_readings"
    MISSING_FIELD = "missing_field"
    UNEXPECTED_FIELD = "unexpected_field"
    WRONG_TYPE = "wrong_type"
    NOT_FINITE = "not_finite"
    OUT_OF_RANGE = "out_of_range"
    BAD_IDENTIFIER = "bad_identifier"
    BAD_TIMESTAMP = "bad_timestamp"
    TIMESTAMP_NOT_UTC = "timestamp_not_utc"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    UNKNOWN_INSTRUMENT = "unknown_instrument"
    """Not registered for the topic's tenant (whether it exists elsewhere is not told)."""
    INSTRUMENT_ELSEWHERE = "instrument_elsewhere"
    """Registered for the topic's tenant, at another site."""
    INSTRUMENT_RETIRED = "instrument_retired"
    """Registered for the topic's tenant and retired: its readings are refused from then on."""
    GATEWAY_MISMATCH = "gateway_mismatch"
    """Registered at the topic's site with another gateway (and gateways do not share)."""
    UNKNOWN_UNIT = "unknown_unit"
    UNIT_NOT_CONVERTIBLE = "unit_not_convertible"
    IMPLAUSIBLE_VALUE = "implausible_value"
    """Outside the instrument's plausible range (its measuring range widened by one span)."""
    DUPLICATE_SEQUENCE = "duplicate_sequence"
    INTAKE_ERROR = "intake_error"
    """Decoding or admission raised what it did not foresee (a defect, logged once per type)."""
    PROCESSING_ERROR = "processing_error"
    """Valid input the processing step failed on (a defect, logged with its traceback)."""
    STORE_REFUSED = "store_refused"
    """The store could not encode what a reading produced (a defect; the rest was stored)."""
    POISON_MESSAGE = "poison_message"
    """The message was in hand when the pipeline died, at the configured number of crashes:
    it is not processed again (``calstream.runtime.in_hand``)."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """One refused input: a whole message (``instrument_id is None``) or one of its readings.

    ``count`` is how many readings the rejection stands for (a whole malformed message counts
    the readings that could be counted in it, at least one), so that
    ``accepted + rejected == received`` holds for readings.
    """

    reason: RejectReason
    detail: str
    instrument_id: str | None = None
    seq: int | None = None
    count: int = 1


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejection as it is kept: where it came from, what it looked like, and why."""

    received_at: float
    topic: str
    reason: RejectReason
    detail: str
    excerpt: str
    count: int = 1
    tenant: str | None = None
    instrument_id: str | None = None
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class Topic:
    """A readings topic, parsed."""

    tenant: str
    site: str
    gateway: str

    def __str__(self) -> str:
        return readings_topic(self.tenant, self.site, self.gateway)


@dataclass(frozen=True, slots=True)
class DecodedMessage:
    """What one MQTT message yields: accepted readings and rejections, never an exception."""

    topic: str
    readings: list[Reading]
    rejections: list[Rejection]

    @property
    def received(self) -> int:
        """Readings received in the message (accepted + rejected)."""
        return len(self.readings) + sum(r.count for r in self.rejections)


def readings_topic(tenant: str, site: str, gateway: str) -> str:
    return f"{TOPIC_ROOT}/{tenant}/{site}/{gateway}/readings"


def alerts_topic(tenant: str) -> str:
    return f"{TOPIC_ROOT}/{tenant}/alerts"


_IDENTIFIER_RE = re.compile(IDENTIFIER_PATTERN)


def parse_topic(topic: str) -> Topic | Rejection:
    """The tenant, site and gateway of a readings topic, or the reason it is not one."""
    parts = topic.split("/")
    if len(parts) != 6 or f"{parts[0]}/{parts[1]}" != TOPIC_ROOT or parts[5] != "readings":
        return Rejection(
            RejectReason.BAD_TOPIC,
            f"topic {excerpt_text(topic, 120)!r} is not "
            f"{TOPIC_ROOT}/<tenant>/<site>/<gateway>/readings",
        )
    for name, part in zip(("tenant", "site", "gateway"), parts[2:5], strict=True):
        if not _IDENTIFIER_RE.match(part):
            return Rejection(
                RejectReason.BAD_TOPIC, f"topic {name} {part!r} is not a valid identifier"
            )
    return Topic(parts[2], parts[3], parts[4])


def excerpt_text(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, with control characters made visible."""
    cleaned = (
        value.encode("unicode_escape", "backslashreplace").decode("ascii")
        if not value.isprintable()
        else value
    )
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def payload_excerpt(payload: bytes) -> str:
    """The first bytes of a payload as safe text, for a dead letter."""
    head = payload[:EXCERPT_BYTES].decode("utf-8", "backslashreplace")
    text = excerpt_text(head, EXCERPT_BYTES)
    return text + ("…" if len(payload) > EXCERPT_BYTES and not text.endswith("…") else "")


# --- encoding (edge gateways and the simulator) ---


def dead_letters_of(
    topic: str, payload: bytes, received_at: float, rejections: Sequence[Rejection]
) -> list[DeadLetter]:
    """The rejections of one message as dead letters: its topic, an excerpt, its topic's tenant."""
    if not rejections:
        return []
    excerpt = payload_excerpt(payload)
    parsed = parse_topic(topic)
    tenant = parsed.tenant if isinstance(parsed, Topic) else None
    return [
        DeadLetter(
            received_at=received_at,
            topic=topic,
            reason=rejection.reason,
            detail=rejection.detail,
            excerpt=excerpt,
            count=rejection.count,
            tenant=tenant,
            instrument_id=rejection.instrument_id,
            seq=rejection.seq,
        )
        for rejection in rejections
    ]


def reading_document(reading: Reading) -> dict[str, Any]:
    """The v1 JSON object of one reading."""
    document: dict[str, Any] = {
        "instrument": reading.instrument_id,
        "ts": iso(reading.ts),
        "value": reading.value,
        "unit": reading.unit,
        "seq": reading.seq,
    }
    if reading.reference is not None:
        document["reference"] = {"value": reading.reference, "u": reading.u_reference or 0.0}
    return document


def encode_status_change(change: StatusChange) -> bytes:
    """The alert event published on :func:`alerts_topic` when an instrument's status changes."""
    document = {
        "v": PAYLOAD_VERSION,
        "tenant": change.tenant,
        "site": change.site,
        "instrument": change.instrument_id,
        "ts": iso(change.ts),
        "previous": None if change.previous is None else str(change.previous),
        "status": str(change.status),
        "reasons": list(change.reasons),
        "numbers": {
            k: v
            for k, v in change.numbers.items()
            if not (isinstance(v, float) and not math.isfinite(v))
        },
    }
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


def encode(tenant: str, site: str, gateway: str, readings: Sequence[Reading]) -> bytes:
    """The v1 payload of a batch of readings from one gateway."""
    for reading in readings:
        if not math.isfinite(reading.value):
            raise ValueError(f"{reading.instrument_id}: a non-finite value cannot be encoded")
    document = {
        "v": PAYLOAD_VERSION,
        "tenant": tenant,
        "site": site,
        "gateway": gateway,
        "readings": [reading_document(r) for r in readings],
    }
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
