"""Property over the whole pipeline: for any mixture of good and hostile messages,
``accepted + dead-lettered == received``, in readings and in messages, and the pipeline runs on.

The fast path (thousands of cases) runs the pipeline's own processing (decode -> admission ->
the fleet step -> the batch a store would write) in process, without a broker; one example of
the same generator then goes through a real mosquitto into a real store.

Counting, as the code defines it: every message counts at least one reading; a message whose
envelope is readable counts the entries of its ``readings`` list (at least one); every counted
reading is either accepted (a row of the store batch) or refused (a dead letter whose ``count``
says how many readings it stands for).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from calstream.runtime.pipeline import Pipeline
from calstream.servers.mosquitto import LocalMosquitto
from calstream.settings import Settings, example_fleet_path
from calstream.wiring import pipeline_for, subscriber_for
from ingest.importers.fleet_file import read_fleet
from ingest.subscriber import InboundMessage
from metrology.timebase import SECONDS_PER_DAY, iso
from metrology.wire import MAX_PAYLOAD_BYTES, readings_topic
from storage.sqlite_store import SqliteStore

FLEET = read_fleet(example_fleet_path())
END = FLEET.as_of or 0.0
SPECS = sorted(FLEET.instruments.values(), key=lambda s: s.instrument_id)
SOURCES = sorted({(s.tenant, s.site, s.gateway) for s in SPECS})
INSTRUMENTS_AT = {
    source: tuple(i for i, s in enumerate(SPECS) if (s.tenant, s.site, s.gateway) == source)
    for source in SOURCES
}


class Message:
    """A generated message and, when its envelope is readable, the readings it counts."""

    def __init__(self, topic: str, payload: bytes, counts: int | None) -> None:
        self.topic, self.payload, self.counts = topic, payload, counts

    def __repr__(self) -> str:
        return f"Message({self.topic!r}, {self.payload[:120]!r}..., counts={self.counts})"


# --- readings, good and bad ----------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)
hostile_numbers = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0]),
    st.text(max_size=5),
    st.booleans(),
    st.none(),
    st.integers(min_value=-(2**70), max_value=2**70),
)
hostile_ids = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["bad\x00id\x07", "a/b", "+", "#", "x" * 5_000, "no-such-instrument", ""]),
    st.integers(),
)
timestamps = st.one_of(
    st.floats(min_value=END - 30 * SECONDS_PER_DAY, max_value=END).map(iso),
    st.sampled_from(
        [
            iso(END + 365 * SECONDS_PER_DAY),  # far in the future
            "1970-01-01T00:00:00Z",  # far in the past
            "2026-03-01T10:00:00+05:30",  # not UTC
            "yesterday",
            "",
        ]
    ),
    st.integers(),
)


@st.composite
def reading_entry(draw: st.DrawFn, local: tuple[int, ...]) -> Any:
    spec_index = draw(st.sampled_from(local))
    spec = SPECS[spec_index]
    entry: dict[str, Any] = {
        "instrument": spec.instrument_id,
        "ts": draw(timestamps) if draw(st.booleans()) else iso(END - draw(st.floats(0, 9e5))),
        "value": draw(finite),
        "unit": spec.unit,
        "seq": draw(st.integers(min_value=1, max_value=400)),  # duplicates and disorder
    }
    mutation = draw(st.integers(min_value=0, max_value=12))
    if mutation == 1:
        entry["value"] = draw(hostile_numbers)
    elif mutation == 2:
        entry["instrument"] = draw(hostile_ids)
    elif mutation == 3:
        entry["unit"] = draw(st.sampled_from(["m", "s", "bogons", "", "kPa", "degF", "K"]))
    elif mutation == 4:
        del entry[draw(st.sampled_from(sorted(entry)))]
    elif mutation == 5:
        entry["extra"] = 1
    elif mutation == 6:
        entry["seq"] = draw(st.one_of(st.integers(max_value=-1), st.just(2**64), st.text()))
    elif mutation == 7:
        entry["reference"] = {"value": draw(finite), "u": draw(st.floats(0, 1))}
    elif mutation == 8:
        entry["reference"] = draw(st.one_of(st.just({"value": 1.0, "u": -1.0}), st.text()))
    elif mutation == 9:
        other = SPECS[(spec_index + 7) % len(SPECS)]  # registered, but elsewhere
        entry["instrument"], entry["unit"] = other.instrument_id, other.unit
    elif mutation == 10:
        return draw(st.one_of(st.integers(), st.text(max_size=10), st.none()))
    return entry


ENTRIES = {
    source: st.lists(reading_entry(local), min_size=0, max_size=8)
    for source, local in INSTRUMENTS_AT.items()
}


@st.composite
def envelope_message(draw: st.DrawFn) -> Message:
    """A JSON object on a readings topic: its readings list decides what it counts."""
    tenant, site, gateway = draw(st.sampled_from(SOURCES))
    entries = draw(ENTRIES[(tenant, site, gateway)])
    document: dict[str, Any] = {
        "v": 1,
        "tenant": tenant,
        "site": site,
        "gateway": gateway,
        "readings": entries,
    }
    mutation = draw(st.integers(min_value=0, max_value=9))
    if mutation == 1:
        document["v"] = draw(st.one_of(st.integers(), st.text(max_size=3), st.none()))
    elif mutation == 2:
        document["tenant"] = draw(st.sampled_from(["intruder", tenant.upper() or "x"]))
    elif mutation == 3:
        document["gateway"] = draw(st.sampled_from(["gw-zz", "bad id"]))
    elif mutation == 4:
        document["extra"] = True
    elif mutation == 5:
        del document["site"]
    topic = readings_topic(tenant, site, gateway)
    payload = json.dumps(document, allow_nan=True).encode()
    return Message(topic, payload, max(1, len(entries)))


@st.composite
def hostile_message(draw: st.DrawFn) -> Message:
    """Whatever else arrives: bytes, JSON that is not a batch, bad topics, huge payloads."""
    tenant, site, gateway = draw(st.sampled_from(SOURCES))
    topic = readings_topic(tenant, site, gateway)
    kind = draw(st.integers(min_value=0, max_value=5))
    if kind == 0:
        return Message(topic, draw(st.binary(max_size=300)), None)
    if kind == 1:
        values = st.recursive(
            st.none() | st.booleans() | st.floats() | st.text(max_size=20),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(st.text(max_size=8), children, max_size=4)
            ),
            max_leaves=12,
        )
        return Message(topic, json.dumps(draw(values)).encode(), None)
    if kind == 2:
        bad = draw(st.sampled_from(["gate way", "x" * 300, "bad!id", "ümlaut"]))
        return Message(f"calstream/v1/{tenant}/{site}/{bad}/readings", b"{}", None)
    if kind == 3:
        return Message(topic, b"{" + b" " * (MAX_PAYLOAD_BYTES + 1) + b"}", None)
    if kind == 4:
        return Message(topic, b'{"v": 1, "readings": [ {"instrument": ', None)
    return Message(topic, draw(st.text(max_size=200)).encode("utf-8", "surrogatepass"), None)


messages = st.lists(st.one_of(envelope_message(), hostile_message()), min_size=1, max_size=12)


# --- the property, in process -------------------------------------------------------------------

_pipeline = pipeline_for(FLEET, Settings(), None, None, clock=lambda: END)  # type: ignore[arg-type]


def check_counts(pipeline: Pipeline, generated: list[Message]) -> None:
    """Process the messages one at a time, checking each one's counts exactly."""
    counters = pipeline.counters
    for index, message in enumerate(generated):
        before = (counters.messages, counters.received, counters.accepted, counters.rejected)
        inbound = InboundMessage(index, 1, message.topic, message.payload, END, 1)
        batch = pipeline.process([inbound])
        messages, received, accepted, rejected = (
            now - then
            for now, then in zip(
                (counters.messages, counters.received, counters.accepted, counters.rejected),
                before,
                strict=True,
            )
        )
        assert messages == 1
        assert received >= 1
        if message.counts is not None:
            assert received == message.counts, message
        assert accepted + rejected == received, message
        assert len(batch.readings) == accepted, message
        assert sum(d.count for d in batch.dead_letters) == rejected, message
        assert all(d.reason and d.detail for d in batch.dead_letters)
    assert counters.accepted + counters.rejected == counters.received
    assert sum(counters.rejected_by_reason.values()) == counters.rejected


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generated=messages)
def test_every_received_reading_is_accepted_or_dead_lettered(generated: list[Message]) -> None:
    """1,000 examples of up to 12 messages: about 5,000 messages counting 13,000 readings."""
    check_counts(_pipeline, generated)
    assert _pipeline.error is None


# --- one example through a real broker into a real store ----------------------------------------


@settings(
    max_examples=1,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(
    generated=st.lists(st.one_of(envelope_message(), hostile_message()), min_size=300, max_size=300)
)
def test_the_same_mixture_through_mosquitto_is_counted_exactly(
    generated: list[Message], mosquitto: LocalMosquitto, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder: Path = tmp_path_factory.mktemp("property")
    store = SqliteStore(folder / "store.sqlite")
    store.register_fleet(FLEET)
    subscriber = subscriber_for(Settings(), mosquitto.host, mosquitto.port, "property-pipeline")
    pipeline = pipeline_for(FLEET, Settings(), store, subscriber, clock=lambda: END)
    pipeline.start()
    raw = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="property-pub")
    raw.connect(mosquitto.host, mosquitto.port)
    raw.loop_start()
    expected_counts = 0
    for message in generated:
        raw.publish(message.topic, message.payload, qos=1).wait_for_publish(10)
        expected_counts += message.counts or 0
    deadline = time.monotonic() + 30
    while pipeline.counters.messages < len(generated) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    pipeline.stop()
    raw.loop_stop()
    raw.disconnect()
    subscriber.stop()

    counters = pipeline.counters
    assert pipeline.error is None
    assert counters.messages == len(generated)  # every message arrived and was counted once
    assert counters.received >= len(generated)
    assert counters.received >= expected_counts
    assert counters.accepted + counters.rejected == counters.received
    assert store.reading_count() == counters.stored == counters.accepted
    assert store.dead_letter_count() == counters.rejected
    assert store.dead_letters_by_reason() == dict(counters.rejected_by_reason)
    store.close()
