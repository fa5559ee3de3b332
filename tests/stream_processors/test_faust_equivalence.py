"""Equivalence: the same input through the embedded runner and the Faust agent, same outputs.

Four simulated days of the example fleet (every reference kind, two peer groups, drifting
instruments), admitted once and fed message by message to both engines. Every reading's
assessment (corrected value, certificate, residual and its uncertainty, EWMA, CUSUM, drift
rate, status), every status change with its reasons and numbers, every final state and every
latest-health snapshot must be equal: exactly, not approximately. Then the clock moves on
without readings and both engines must raise the same OFFLINE changes.
"""

from __future__ import annotations

import pytest
from faust_harness import Collected, admitted_messages, bind, put_message, run

from metrology.fleet import Fleet
from metrology.health import Status
from stream_processors.codec import decode_state
from stream_processors.faust_app import make_app
from stream_processors.runner import FleetProcessor

pytestmark = pytest.mark.timeout(240)

DAYS = 4.0
PARTITIONS = 6
SILENCE_S = 2 * 86_400.0
"""After the last reading the clock moves on two silent days: OFFLINE for most instruments."""


def test_faust_agent_gives_exactly_the_embedded_runners_outputs(example_fleet: Fleet) -> None:
    messages = list(admitted_messages(example_fleet, days=DAYS, seed=23))
    embedded = FleetProcessor(example_fleet)
    expected_readings, expected_changes = [], []
    for readings in messages:
        output = embedded.process(readings)
        assert not output.failed
        expected_readings.extend(output.assessed)
        expected_changes.extend(output.changes)

    sink = Collected()
    engine = make_app(example_fleet, sink=sink, sink_max_readings=1_000, partitions=PARTITIONS)

    quiet_until = embedded.watermark + SILENCE_S
    expected_sweep = embedded.sweep(quiet_until)

    async def scenario() -> int:
        bind(engine)
        records = 0
        async with engine.process_readings.test_context() as agent:
            for readings in messages:
                records += await put_message(agent, example_fleet, readings)
            await engine.flush()
            swept_from = len(sink.changes)
            for partition in range(PARTITIONS):  # the leader's clock tick, to every partition
                await agent.put({"v": 1, "tick": quiet_until}, partition=partition)
            await engine.flush()
        sweep.extend(sink.changes[swept_from:])
        return records

    sweep: list = []
    records = run(scenario)
    assert records >= len(messages)

    by_reading = {(r.instrument_id, r.ts, r.seq): a for r, a in sink.readings}
    assert len(by_reading) == len(sink.readings) == len(expected_readings) > 20_000
    mismatched = [
        (reading, assessment, by_reading.get((reading.instrument_id, reading.ts, reading.seq)))
        for reading, assessment in expected_readings
        if by_reading.get((reading.instrument_id, reading.ts, reading.seq)) != assessment
    ]
    assert mismatched == []
    # Within one instrument the order is the same; across instruments of a message it may differ.
    assert sorted(sink.readings) == sorted(expected_readings)

    def per_instrument(changes):
        return sorted(changes, key=lambda c: (c.instrument_id, c.ts, str(c.status)))

    assert len(expected_changes) > 0
    swept = set(map(id, sweep))
    from_readings = [c for c in sink.changes if id(c) not in swept]
    assert per_instrument(from_readings) == per_instrument(expected_changes)
    # The clock: the same OFFLINE (and due-date) changes, with the same reasons and numbers.
    assert {c.status for c in expected_sweep} == {Status.OFFLINE}
    assert per_instrument(sweep) == per_instrument(expected_sweep)

    states = {i: decode_state(engine.states[i]) for i in example_fleet.instruments}
    assert states == embedded.states
    offline = {i for i, s in states.items() if Status.OFFLINE in s.conditions}
    assert offline == {c.instrument_id for c in expected_sweep} and len(offline) > 30

    assert engine.processing.watermark == quiet_until - SILENCE_S == embedded.watermark
    faust_snapshots = engine.processing.snapshots(set(example_fleet.instruments))
    embedded_snapshots = embedded.snapshots(sorted(example_fleet.instruments))
    assert faust_snapshots == embedded_snapshots
