"""The wire contract: encode/decode round trip and a precise reason for every rejection."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.decoders.json_v1 import decode
from metrology.reading import Reading
from metrology.wire import (
    MAX_PAYLOAD_BYTES,
    MAX_READINGS_PER_MESSAGE,
    RejectReason,
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


# --- exact JSON types, in the fast path and the slow path ---------------------------------------


def _raw_payload(reading_changes: dict[str, str], index: int = 1, n: int = 3) -> bytes:
    """A valid batch whose reading ``index`` has fields replaced by raw JSON tokens."""
    doc = document(n)
    text = json.dumps(doc)
    entry = json.dumps(doc["readings"][index])
    changed = dict(doc["readings"][index])
    for key in reading_changes:
        changed[key] = f"@{key}@"
    replaced = json.dumps(changed)
    for key, token in reading_changes.items():
        replaced = replaced.replace(json.dumps(f"@{key}@"), token)
    return text.replace(entry, replaced).encode()


EXACT_TYPES = {
    "seq_true": ({"seq": "true"}, RejectReason.WRONG_TYPE),
    "seq_float": ({"seq": "101.0"}, RejectReason.WRONG_TYPE),
    "seq_exponent": ({"seq": "1e3"}, RejectReason.WRONG_TYPE),
    "seq_string": ({"seq": '"101"'}, RejectReason.WRONG_TYPE),
    "value_true": ({"value": "true"}, RejectReason.WRONG_TYPE),
    "value_false": ({"value": "false"}, RejectReason.WRONG_TYPE),
    "value_string": ({"value": '"21.5"'}, RejectReason.WRONG_TYPE),
    "value_null": ({"value": "null"}, RejectReason.WRONG_TYPE),
    "value_array": ({"value": "[21.5]"}, RejectReason.WRONG_TYPE),
    "value_object": ({"value": '{"v": 21.5}'}, RejectReason.WRONG_TYPE),
    "value_nan": ({"value": "NaN"}, RejectReason.NOT_FINITE),
    "value_overflow": ({"value": "1e400"}, RejectReason.NOT_FINITE),
    "reference_value_true": ({"reference": '{"value": true, "u": 0.01}'}, RejectReason.WRONG_TYPE),
    "reference_u_true": ({"reference": '{"value": 21.5, "u": true}'}, RejectReason.WRONG_TYPE),
    "reference_u_string": ({"reference": '{"value": 21.5, "u": "0.01"}'}, RejectReason.WRONG_TYPE),
    "reference_u_infinite": (
        {"reference": '{"value": 21.5, "u": Infinity}'},
        RejectReason.NOT_FINITE,
    ),
    "unit_number": ({"unit": "1"}, RejectReason.WRONG_TYPE),
    "instrument_number": ({"instrument": "7"}, RejectReason.WRONG_TYPE),
}


@pytest.mark.parametrize("name", sorted(EXACT_TYPES))
@pytest.mark.parametrize("slow", [False, True], ids=["alone", "beside-another-bad-reading"])
def test_json_types_are_exact_in_both_paths(name: str, slow: bool) -> None:
    changes, expected = EXACT_TYPES[name]
    raw = _raw_payload(changes)
    if slow:  # reading 2 is bad too, so the message takes the slow path from the start
        raw = raw.replace(b'"seq": 102', b'"seq": -102')
    decoded = decode(TOPIC, raw)
    reasons = [(r.reason, r.detail.split(":")[0]) for r in decoded.rejections]
    assert reasons[0] == (expected, f"readings[1].{_field_of(changes)}")
    assert [r.instrument_id for r in decoded.readings] == (
        ["acme-north-TT-000"] if slow else ["acme-north-TT-000", "acme-north-TT-002"]
    )
    assert decoded.received == 3


def _field_of(changes: dict[str, str]) -> str:
    (key,) = changes
    if key == "reference":
        return "reference." + ("value" if "true," in changes[key] else "u")
    return key


@pytest.mark.parametrize("version", ["true", "1.0", '"1"', "1e0", "[1]", "null"])
def test_the_version_is_the_integer_1_and_nothing_equal_to_it(version: str) -> None:
    raw = json.dumps(document()).replace('"v": 1', f'"v": {version}').encode()
    (rejection,) = decode(TOPIC, raw).rejections
    assert rejection.reason is RejectReason.WRONG_TYPE
    assert rejection.detail.startswith("v: ")
    assert rejection.count == 3


def test_another_integer_version_is_unsupported() -> None:
    raw = json.dumps({**document(), "v": 2}).encode()
    (rejection,) = decode(TOPIC, raw).rejections
    assert rejection.reason is RejectReason.UNSUPPORTED_VERSION
    assert rejection.detail == "payload version 2 is not supported (this decoder reads v=1)"


# --- duplicate keys: refused, never "the last one wins" ------------------------------------------


def test_a_repeated_envelope_key_refuses_the_message() -> None:
    raw = json.dumps(document()).replace('"v": 1,', '"v": 1, "tenant": "rival",').encode()
    (rejection,) = decode(TOPIC, raw).rejections
    assert rejection.reason is RejectReason.DUPLICATE_KEY
    assert rejection.detail == "payload: key(s) 'tenant' appear more than once in one object"
    assert rejection.count == 3


@pytest.mark.parametrize(
    ("original", "repeated", "where", "key"),
    [
        ('"value": 21.6', '"value": 21.6, "value": 99.0', "readings[1]", "value"),
        ('"value": 21.6', '"value": 21.6, "value": 21.6', "readings[1]", "value"),  # same value
        ('"value": 21.6', '"value": 21.6, "\\u0076alue": 99.0', "readings[1]", "value"),  # escaped
        ('"u": 0.01}', '"u": 0.01, "u": 0.0}', "readings[1].reference", "u"),
        ('"seq": 101', '"seq": 101, "seq": 7', "readings[1]", "seq"),
    ],
)
def test_a_repeated_reading_key_refuses_that_reading_only(
    original: str, repeated: str, where: str, key: str
) -> None:
    doc = document(3)
    text = json.dumps(doc)
    entry = json.dumps(doc["readings"][1])
    raw = text.replace(entry, entry.replace(original, repeated, 1)).encode()
    decoded = decode(TOPIC, raw)
    assert [r.instrument_id for r in decoded.readings] == ["acme-north-TT-000", "acme-north-TT-002"]
    (rejection,) = decoded.rejections
    assert rejection.reason is RejectReason.DUPLICATE_KEY
    assert rejection.detail == f"{where}: key(s) {key!r} appear more than once in one object"
    assert rejection.instrument_id == "acme-north-TT-001"


@pytest.mark.parametrize("unit", ["µm", "°C", 'in"', "u", "value", "m\\s"])
def test_quotes_and_escapes_without_repeated_keys_decode_normally(unit: str) -> None:
    """Escapes and quotes in strings send the fast path to the key check, which passes them."""
    raw = encode("acme", "north", "gw-01", [reading(0, unit=unit), reading(1)])
    decoded = decode(TOPIC, raw)
    assert decoded.rejections == []
    assert [r.unit for r in decoded.readings] == [unit, "degC"]


# --- what JSON is: UTF-8 only, nesting and size limits ------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(document()).encode("utf-16"),
        json.dumps(document()).encode("utf-32"),
        b"\xef\xbb\xbf" + json.dumps(document()).encode(),  # a UTF-8 byte order mark
        json.dumps(document(), ensure_ascii=False).replace("degC", "°C").encode("latin-1"),
        json.dumps(document()).replace("degC", "\\ud800").encode(),  # a lone surrogate
        json.dumps(document()).encode().replace(b"degC", b"deg\xffC"),
        b'{"v": 1, "readings": [' + b"[" * 1_000 + b"]" * 1_000 + b"]}",
    ],
    ids=["utf-16", "utf-32", "bom", "latin-1", "lone-surrogate", "invalid-utf-8", "deep"],
)
def test_what_is_not_utf8_json_within_the_nesting_limit_is_malformed(raw: bytes) -> None:
    decoded = decode(TOPIC, raw)
    (rejection,) = decoded.rejections
    assert rejection.reason is RejectReason.MALFORMED_JSON, rejection.detail
    assert decoded.readings == [] and decoded.received == 1


def test_the_nesting_limit_is_201_levels() -> None:
    def nested_in_value(depth: int) -> bytes:  # the value sits 3 levels deep
        return json.dumps(document()).replace("21.6", "[" * depth + "]" * depth, 1).encode()

    readable = decode(TOPIC, nested_in_value(198))
    assert [r.reason for r in readable.rejections] == [RejectReason.WRONG_TYPE]
    assert len(readable.readings) == 2
    (too_deep,) = decode(TOPIC, nested_in_value(199)).rejections
    assert too_deep.reason is RejectReason.MALFORMED_JSON
    assert "recursion limit" in too_deep.detail


def test_the_size_limit_is_inclusive() -> None:
    raw = json.dumps(document()).encode()
    at_limit = raw[:-1] + b" " * (MAX_PAYLOAD_BYTES - len(raw)) + b"}"
    assert len(at_limit) == MAX_PAYLOAD_BYTES
    assert len(decode(TOPIC, at_limit).readings) == 3
    (rejection,) = decode(TOPIC, at_limit + b" ").rejections
    assert rejection.reason is RejectReason.OVERSIZED_PAYLOAD


@pytest.mark.parametrize("unit", ["", "x" * 33])
def test_a_unit_of_no_length_or_too_long_is_unknown(unit: str) -> None:
    decoded = decode(TOPIC, encode("acme", "north", "gw-01", [reading(0, unit=unit), reading(1)]))
    (rejection,) = decoded.rejections
    assert rejection.reason is RejectReason.UNKNOWN_UNIT
    assert rejection.detail.startswith("readings[0].unit: ")


def test_every_refusal_reason_is_documented_in_the_table() -> None:
    root = Path(__file__).resolve().parents[2]
    text = (root / "docs" / "wire-contract.md").read_text(encoding="utf-8")
    table = text[text.index("### Refusal reasons") :]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.MULTILINE))
    assert documented == {reason.value for reason in RejectReason}
    operations = (root / "docs" / "operations.md").read_text(encoding="utf-8")
    assert "wire-contract.md#refusal-reasons" in operations
