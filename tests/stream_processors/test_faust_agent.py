"""The Faust agent in Faust's test harness: memory and RocksDB tables, calibration updates."""

from __future__ import annotations

from pathlib import Path

import pytest
from faust_harness import Collected, admitted_messages, bind, put_message, run

from metrology.calibration import CalibrationHistory, CalibrationRecord, Correction
from metrology.fleet import Fleet
from metrology.health import Status
from stream_processors.codec import decode_state, encode_calibrations
from stream_processors.faust_app import make_app
from stream_processors.routing import PEER_KEY_MARK, encode_readings_record, routing_key
from stream_processors.runner import FleetProcessor

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_agent_keeps_state_in_the_table_and_matches_the_embedded_runner(
    store: str, example_fleet: Fleet, tmp_path: Path
) -> None:
    """Two simulated days through the agent; with RocksDB a state mutated in place would be lost.

    Every instrument's state read back from the table equals the embedded runner's, and so
    does every assessment.
    """
    messages = list(admitted_messages(example_fleet, days=2.0))
    embedded = FleetProcessor(example_fleet)
    expected = [pair for m in messages for pair in embedded.process(m).assessed]
    sink = Collected()
    engine = make_app(
        example_fleet, store=store, data_dir=tmp_path, sink=sink, sink_max_readings=200
    )

    async def scenario() -> dict[str, object]:
        bind(engine)
        async with engine.process_readings.test_context() as agent:
            for readings in messages:
                await put_message(agent, example_fleet, readings)
            await engine.flush()
            return {i: decode_state(engine.states[i]) for i in example_fleet.instruments}

    states = run(scenario)
    assert len(expected) > 5_000
    assert sorted(sink.readings) == sorted(expected)
    assert states == embedded.states
    assert engine.flushes == pytest.approx(len(expected) / 200, abs=2)
    assert sum(s.status is not Status.OK for s in states.values()) > 0


def test_peer_group_members_share_one_key_and_one_board(example_fleet: Fleet) -> None:
    groups = {
        routing_key(spec)
        for spec in example_fleet.instruments.values()
        if spec.reference.peer_group is not None
    }
    assert len(groups) == 2 and all(PEER_KEY_MARK in key for key in groups)
    sink = Collected()
    engine = make_app(example_fleet, sink=sink)

    async def scenario() -> int:
        bind(engine)
        async with engine.process_readings.test_context() as agent:
            for readings in admitted_messages(example_fleet, days=0.5):
                await put_message(agent, example_fleet, readings)
            await engine.flush()
        return len(engine.boards[next(k for k in groups if "north" in k)]["members"])

    members = run(scenario)
    assert members == 4
    members_of_north = {
        i
        for i, spec in example_fleet.instruments.items()
        if spec.reference.peer_group == "acme-north-PT-pg01"
    }
    referenced = {r.instrument_id for r, _ in sink.readings if r.reference is not None}
    assert members_of_north <= referenced  # each took its reference from the others


def test_a_calibration_update_reaches_the_worker_through_the_calibration_table(
    example_fleet: Fleet,
) -> None:
    """A new certificate on the compacted topic changes the correction of the next reading."""
    instrument_id, spec = next(
        (i, s) for i, s in example_fleet.instruments.items() if s.reference.peer_group is None
    )
    first = next(admitted_messages(example_fleet, days=1.0))
    reading = next(r for r in first if r.instrument_id == instrument_id)
    later = reading._replace(ts=reading.ts + 60.0, seq=reading.seq + 10_000)
    certificate = CalibrationRecord(
        instrument_id, "CAL-NEW", reading.ts + 1.0, Correction(offset=1.5), 0.01, 2.0, 365.0
    )
    history = example_fleet.calibrations[instrument_id].with_record(certificate)
    sink = Collected()
    engine = make_app(example_fleet, sink=sink, sink_max_readings=1)
    key = routing_key(spec)

    async def scenario() -> None:
        bind(engine)
        async with engine.process_readings.test_context() as readings_agent:
            await readings_agent.put(encode_readings_record(key, [reading]), key=key)
        async with engine.apply_calibrations.test_context() as calibrations_agent:
            await calibrations_agent.put(encode_calibrations(history), key=instrument_id)
            await calibrations_agent.put({"v": 1, "records": []}, key="not-registered")
            await calibrations_agent.put({"v": 7}, key=instrument_id)  # refused, logged
        async with engine.process_readings.test_context() as readings_agent:
            await readings_agent.put(encode_readings_record(key, [later]), key=key)

    run(scenario)
    (_, before), (_, after) = sink.readings
    assert before.certificate_id != "CAL-NEW"
    assert after.certificate_id == "CAL-NEW"
    assert after.corrected == pytest.approx(later.value + 1.5)
    assert list(engine.calibrations.keys()) == [instrument_id]
    assert isinstance(engine.processing.context(instrument_id).calibrations, CalibrationHistory)


def test_an_unreadable_record_is_logged_and_skipped_not_a_crash(
    example_fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    instrument_id, spec = next(iter(example_fleet.instruments.items()))
    reading = next(
        r for m in admitted_messages(example_fleet, days=1.0) for r in m
        if r.instrument_id == instrument_id
    )  # fmt: skip
    key = routing_key(spec)
    sink = Collected()
    engine = make_app(example_fleet, sink=sink, sink_max_readings=1)

    async def scenario() -> None:
        bind(engine)
        async with engine.process_readings.test_context() as agent:
            await agent.put({"v": 9, "readings": "?"}, key=key)
            await agent.put(encode_readings_record(key, [reading]), key=key)

    run(scenario)
    assert [r for r, _ in sink.readings] == [reading]
    assert "unreadable readings record" in caplog.text
