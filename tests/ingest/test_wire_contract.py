"""The wire contract: encode/decode round trip and a precise reason for every rejection."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrology.reading import Reading
from metrology.wire import (
    MAX_PAYLOAD_BYTES,
    MAX_READINGS_PER_MESSAGE,
    RejectReason,
    decode,
    encode,
    parse_topic,
    readings_topic,
)

TOPIC = readings_topic("acme", "north", "gw-01")


def reading(i: int = 0, **changes: object) -> Reading:
    base = Reading(
        "acme",
        "north",
        "gw-01",
        f"acme-north-TT-{i:03d}",
        1_780_000_000.0 + i,
        21.5 + i / 10,
        "degC",
        100 + i,
        21.49,
        0.01,
    )
    return base._replace(**changes)


def document(n: int = 3) -> dict:
    return json.loads(encode("acme", "north", "gw-01", [reading(i) for i in range(n)]))


def payload(doc: dict) -> bytes:
    return json.dumps(doc).encode()


def test_round_trip_keeps_every_field() -> None:
    readings = [reading(i) for i in range(5)] + [reading(9, reference=None, u_reference=None)]
    decoded = decode(TOPIC, encode("acme", "north", "gw-01", readings))
    assert decoded.rejections == []
    assert decoded.readings == readings
    assert decoded.received == 6


@given(
    value=st.floats(allow_nan=False, allow_infinity=False, width=64),
    ts=st.floats(min_value=0, max_value=4_000_000_000),
    seq=st.integers(min_value=0, max_value=2**63 - 1),
)
@settings(max_examples=300, deadline=None)
def test_round_trip_property(value: float, ts: float, seq: int) -> None:
    ts = round(ts, 3)  # the wire carries milliseconds
    original = reading(value=value, ts=ts, seq=seq)
    decoded = decode(TOPIC, encode("acme", "north", "gw-01", [original]))
    assert decoded.rejections == []
    (back,) = decoded.readings
    assert back.value == value and back.seq == seq
    assert math.isclose(back.ts, ts, abs_tol=1e-3)


def _reason_of(raw: bytes, topic: str = TOPIC) -> tuple[RejectReason, str, int, int]:
    decoded = decode(topic, raw)
    assert decoded.rejections, "expected a rejection"
    first = decoded.rejections[0]
    return first.reason, first.detail, len(decoded.readings), decoded.received


MALFORMED = {
    "malformed_json": (b'{"v": 1, "tenant": "acme", ', RejectReason.MALFORMED_JSON),
    "not_an_object": (b"[1, 2, 3]", RejectReason.NOT_AN_OBJECT),
    "version": (payload({**document(), "v": 2}), RejectReason.UNSUPPORTED_VERSION),
    "tenant_mismatch": (payload({**document(), "tenant": "rival"}), RejectReason.TENANT_MISMATCH),
    "gateway_mismatch": (payload({**document(), "gateway": "gw-99"}), RejectReason.SOURCE_MISMATCH),
    "empty_batch": (payload({**document(), "readings": []}), RejectReason.EMPTY_BATCH),
    "too_many": (
        payload(
            {
                **document(1),
                "readings": [
                    {
                        "instrument": "a",
                        "ts": "2026-01-01T00:00:00Z",
                        "value": 1.0,
                        "unit": "K",
                        "seq": i,
                    }
                    for i in range(MAX_READINGS_PER_MESSAGE + 1)
                ],
            }
        ),
        RejectReason.TOO_MANY_READINGS,
    ),
    "oversized": (b" " * (MAX_PAYLOAD_BYTES + 1), RejectReason.OVERSIZED_PAYLOAD),
    "unexpected_field": (payload({**document(), "extra": 1}), RejectReason.UNEXPECTED_FIELD),
    "missing_envelope_field": (
        payload({k: v for k, v in document().items() if k != "site"}),
        RejectReason.MISSING_FIELD,
    ),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_message_level_rejections(name: str) -> None:
    raw, expected = MALFORMED[name]
    reason, detail, accepted, received = _reason_of(raw)
    assert reason is expected
    assert accepted == 0
    assert detail  # a sentence a person can act on
    assert received >= 1


PER_READING = {
    "nan": ({"value": float("nan")}, None, RejectReason.NOT_FINITE),
    "infinity": ({"value": float("inf")}, None, RejectReason.NOT_FINITE),
    "string_value": ({"value": "21.5"}, None, RejectReason.WRONG_TYPE),
    "boolean_seq": ({"seq": True}, None, RejectReason.WRONG_TYPE),
    "negative_seq": ({"seq": -1}, None, RejectReason.OUT_OF_RANGE),
    "missing_value": ({}, "value", RejectReason.MISSING_FIELD),
    "naive_timestamp": ({"ts": "2026-05-01T12:00:00"}, None, RejectReason.TIMESTAMP_NOT_UTC),
    "offset_timestamp": ({"ts": "2026-05-01T12:00:00+02:00"}, None, RejectReason.TIMESTAMP_NOT_UTC),
    "garbage_timestamp": ({"ts": "yesterday"}, None, RejectReason.BAD_TIMESTAMP),
    "numeric_timestamp": ({"ts": 1780000000}, None, RejectReason.BAD_TIMESTAMP),
    "control_chars_in_id": ({"instrument": "TT\u0000\u0007-1"}, None, RejectReason.BAD_IDENTIFIER),
    "huge_id": ({"instrument": "x" * 10_000}, None, RejectReason.BAD_IDENTIFIER),
    "wildcard_in_id": ({"instrument": "acme/#"}, None, RejectReason.BAD_IDENTIFIER),
    "negative_reference_u": (
        {"reference": {"value": 1.0, "u": -0.1}},
        None,
        RejectReason.OUT_OF_RANGE,
    ),
    "unknown_reading_field": ({"colour": "red"}, None, RejectReason.UNEXPECTED_FIELD),
}


@pytest.mark.parametrize("name", sorted(PER_READING))
def test_reading_level_rejections_keep_the_good_readings(name: str) -> None:
    change, drop, expected = PER_READING[name]
    doc = document(3)
    doc["readings"][1].update(change)
    if drop:
        del doc["readings"][1][drop]
    raw = json.dumps(doc, allow_nan=True).encode()
    decoded = decode(TOPIC, raw)
    assert [r.instrument_id for r in decoded.readings] == ["acme-north-TT-000", "acme-north-TT-002"]
    (rejection,) = decoded.rejections
    assert rejection.reason is expected, rejection.detail
    assert rejection.detail.startswith("readings[1].")
    assert decoded.received == 3


@pytest.mark.parametrize(
    "topic",
    [
        "calstream/v1/acme/north/readings",
        "other/v1/acme/north/gw-01/readings",
        "calstream/v1/acme/north/gw-01/alerts",
        "calstream/v1/ac me/north/gw-01/readings",
    ],
)
def test_bad_topics_are_refused(topic: str) -> None:
    assert parse_topic(topic).reason is RejectReason.BAD_TOPIC  # type: ignore[union-attr]
    reason, _, accepted, _ = _reason_of(encode("acme", "north", "gw-01", [reading()]), topic)
    assert reason is RejectReason.BAD_TOPIC and accepted == 0


@given(st.binary(max_size=2_000))
@settings(max_examples=2000, deadline=None)
def test_decode_never_raises_and_counts_every_reading(raw: bytes) -> None:
    decoded = decode(TOPIC, raw)
    assert decoded.received == len(decoded.readings) + sum(r.count for r in decoded.rejections)
    assert decoded.received >= 1
