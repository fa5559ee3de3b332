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

Decoding is strict and never raises on input: every reading is either returned as a
:class:`~metrology.reading.Reading` or rejected with a :class:`Rejection` naming a precise
:class:`RejectReason`. One bad reading does not reject the other readings of its message.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, NotRequired

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, with_config
from pydantic_core import core_schema
from typing_extensions import TypedDict

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
    """Why an input was refused. Each value is stored with the dead letter and counted."""

    OVERSIZED_PAYLOAD = "oversized_payload"
    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
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
    INSTRUMENT_ELSEWHERE = "instrument_elsewhere"
    UNKNOWN_UNIT = "unknown_unit"
    UNIT_NOT_CONVERTIBLE = "unit_not_convertible"
    DUPLICATE_SEQUENCE = "duplicate_sequence"
    PROCESSING_ERROR = "processing_error"
    """Valid input the processing step failed on (a defect, logged with its traceback)."""


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


# --- payload models (pydantic validates in Rust: about 2 us per reading on this machine) ---


class _UtcTime(datetime):
    """An ISO 8601 timestamp whose UTC offset is zero (checked inside pydantic-core)."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.datetime_schema(tz_constraint=0)


_Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

# Readings validate into TypedDicts rather than models: pydantic-core builds plain dicts in Rust,
# which makes decoding about a third cheaper than building a model per reading.


@with_config(_STRICT)
class ReferenceV1(TypedDict):
    value: float
    u: Annotated[float, Field(ge=0.0)]


@with_config(_STRICT)
class ReadingV1(TypedDict):
    instrument: _Identifier
    ts: _UtcTime
    value: float
    unit: Annotated[str, Field(min_length=1, max_length=32)]
    seq: Annotated[int, Field(ge=0, le=MAX_SEQUENCE)]
    reference: NotRequired[ReferenceV1 | None]


class _EnvelopeFields(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    v: Literal[1]
    tenant: _Identifier
    site: _Identifier
    gateway: _Identifier


class BatchV1(_EnvelopeFields):
    readings: Annotated[list[ReadingV1], Field(min_length=1, max_length=MAX_READINGS_PER_MESSAGE)]


class _LooseBatch(_EnvelopeFields):
    readings: list[Any]


_BATCH = TypeAdapter(BatchV1)
_READING = TypeAdapter(ReadingV1)

_ERROR_REASONS: dict[str, RejectReason] = {
    "missing": RejectReason.MISSING_FIELD,
    "extra_forbidden": RejectReason.UNEXPECTED_FIELD,
    "finite_number": RejectReason.NOT_FINITE,
    "string_pattern_mismatch": RejectReason.BAD_IDENTIFIER,
    "string_too_long": RejectReason.BAD_IDENTIFIER,
    "string_too_short": RejectReason.BAD_IDENTIFIER,
    "timezone_aware": RejectReason.TIMESTAMP_NOT_UTC,
    "timezone_offset": RejectReason.TIMESTAMP_NOT_UTC,
    "greater_than_equal": RejectReason.OUT_OF_RANGE,
    "less_than_equal": RejectReason.OUT_OF_RANGE,
    "literal_error": RejectReason.UNSUPPORTED_VERSION,
}


def _reason_of(error: Any) -> RejectReason:
    kind = str(error["type"])
    if kind in _ERROR_REASONS:
        return _ERROR_REASONS[kind]
    if kind.startswith(("datetime", "date_", "time_")) and error["loc"][-1:] == ("ts",):
        return RejectReason.BAD_TIMESTAMP
    return RejectReason.WRONG_TYPE


def _describe(exc: ValidationError, where: str = "") -> tuple[RejectReason, str]:
    first = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in first["loc"]) or "payload"
    got = first.get("input")
    shown = excerpt_text(repr(got), 60) if got is not None and first["type"] != "missing" else ""
    detail = f"{where}{loc}: {first['msg']}" + (f" (got {shown})" if shown else "")
    more = exc.error_count() - 1
    if more:
        detail += f"; {more} more error(s)"
    return _reason_of(first), detail


_new_reading = tuple.__new__


def _to_reading(topic: Topic, r: ReadingV1) -> Reading:
    reference = r.get("reference")
    return _new_reading(
        Reading,
        (
            topic.tenant,
            topic.site,
            topic.gateway,
            r["instrument"],
            r["ts"].timestamp(),
            r["value"],
            r["unit"],
            r["seq"],
            None if reference is None else reference["value"],
            None if reference is None else reference["u"],
        ),
    )


def _check_source(topic: Topic, batch: _EnvelopeFields) -> Rejection | None:
    if batch.tenant != topic.tenant:
        return Rejection(
            RejectReason.TENANT_MISMATCH,
            f"payload tenant {batch.tenant!r} does not match topic tenant {topic.tenant!r}",
        )
    if (batch.site, batch.gateway) != (topic.site, topic.gateway):
        return Rejection(
            RejectReason.SOURCE_MISMATCH,
            f"payload site/gateway {batch.site}/{batch.gateway} does not match topic "
            f"{topic.site}/{topic.gateway}",
        )
    return None


def decode(topic_name: str, payload: bytes) -> DecodedMessage:
    """Decode and validate one message; never raises on input."""
    topic = parse_topic(topic_name)
    if isinstance(topic, Rejection):
        return DecodedMessage(topic_name, [], [topic])
    if len(payload) > MAX_PAYLOAD_BYTES:
        rejection = Rejection(
            RejectReason.OVERSIZED_PAYLOAD,
            f"payload of {len(payload)} bytes exceeds the limit of {MAX_PAYLOAD_BYTES} bytes",
        )
        return DecodedMessage(topic_name, [], [rejection])
    try:
        batch = _BATCH.validate_json(payload)
    except ValidationError:
        return _decode_slowly(topic_name, topic, payload)
    mismatch = _check_source(topic, batch)
    if mismatch is not None:
        counted = Rejection(mismatch.reason, mismatch.detail, count=len(batch.readings))
        return DecodedMessage(topic_name, [], [counted])
    return DecodedMessage(topic_name, [_to_reading(topic, r) for r in batch.readings], [])


def _decode_slowly(topic_name: str, topic: Topic, payload: bytes) -> DecodedMessage:
    """The error path: find which part of the message is wrong and keep every good reading."""

    def whole(reason: RejectReason, detail: str, count: int = 1) -> DecodedMessage:
        return DecodedMessage(topic_name, [], [Rejection(reason, detail, count=max(count, 1))])

    try:
        document = pydantic_core.from_json(payload, allow_inf_nan=True)
    except ValueError as exc:
        return whole(RejectReason.MALFORMED_JSON, f"not valid JSON: {exc}")
    if not isinstance(document, dict):
        return whole(
            RejectReason.NOT_AN_OBJECT,
            f"payload is a JSON {type(document).__name__}, not an object",
        )
    raw_readings = document.get("readings")
    count = len(raw_readings) if isinstance(raw_readings, list) else 1
    if document.get("v") != PAYLOAD_VERSION:
        return whole(
            RejectReason.UNSUPPORTED_VERSION,
            f"payload version {excerpt_text(repr(document.get('v')), 40)} is not supported "
            f"(this decoder reads v={PAYLOAD_VERSION})",
            count,
        )
    try:
        envelope = _LooseBatch.model_validate(document)
    except ValidationError as exc:
        reason, detail = _describe(exc)
        return whole(reason, detail, count)
    mismatch = _check_source(topic, envelope)
    if mismatch is not None:
        return whole(mismatch.reason, mismatch.detail, count)
    if not envelope.readings:
        return whole(RejectReason.EMPTY_BATCH, "readings: the batch holds no reading")
    if len(envelope.readings) > MAX_READINGS_PER_MESSAGE:
        return whole(
            RejectReason.TOO_MANY_READINGS,
            f"readings: {len(envelope.readings)} readings exceed the limit of "
            f"{MAX_READINGS_PER_MESSAGE} per message",
            count,
        )
    readings: list[Reading] = []
    rejections: list[Rejection] = []
    for index, raw in enumerate(envelope.readings):
        try:
            # Round-trip through JSON so the reading is judged by exactly the strict JSON rules of
            # the fast path (python-mode strictness would refuse ISO strings as datetimes).
            model = _READING.validate_json(json.dumps(raw, allow_nan=True))
        except ValidationError as exc:
            reason, detail = _describe(exc, where=f"readings[{index}].")
            rejections.append(
                Rejection(reason, detail, _identifier_of(raw, "instrument"), _sequence_of(raw))
            )
            continue
        readings.append(_to_reading(topic, model))
    return DecodedMessage(topic_name, readings, rejections)


def _identifier_of(raw: Any, key: str) -> str | None:
    value = raw.get(key) if isinstance(raw, dict) else None
    return excerpt_text(value, MAX_IDENTIFIER_LENGTH) if isinstance(value, str) else None


def _sequence_of(raw: Any) -> int | None:
    value = raw.get("seq") if isinstance(raw, dict) else None
    return (
        value
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEQUENCE
        else None
    )


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
