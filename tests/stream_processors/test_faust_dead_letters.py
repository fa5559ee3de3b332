"""A reading `step` raises on becomes a dead letter in the Faust worker, as in the embedded runner.

The failing input is a real one for `step`: a reading whose value is finite but so large (1e200)
that its squared deviation overflows. Admission refuses such a value at the edge (it lies far
outside the instrument's plausible range), but a worker takes whatever the readings topic holds.
Arriving as the last residual of the detectors' warm-up, it makes the sigma estimate infinite,
and designing the baseline from it raises :class:`~metrology.errors.ChartError`. The reading
after it completes the warm-up normally (the failed reading left the state as it was).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faust_harness import Collected, admitted_messages, bind, put_message, run

from metrology.batch import OutputBatch
from metrology.errors import ChartError
from metrology.fleet import Fleet
from metrology.instrument import ReferenceKind
from metrology.reading import Reading
from metrology.wire import DeadLetter, RejectReason, readings_topic
from storage.sqlite_store import SqliteStore
from stream_processors.codec import decode_state
from stream_processors.dead_letters import dead_letters_of_failed
from stream_processors.faust_app import make_app
from stream_processors.policy import ProcessingPolicy
from stream_processors.runner import FleetProcessor
from stream_processors.state import InstrumentState

pytestmark = pytest.mark.timeout(120)

HUGE = 1e200
"""Finite; its square is not."""


def with_a_failing_reading(
    fleet: Fleet, messages: list[list[Reading]], warm_up: int
) -> tuple[list[list[Reading]], Reading]:
    """The messages with the last warm-up residual of one instrument replaced by a huge value.

    The instrument is the first (by id) compared with a reference instrument, outside any peer
    group, with a certificate in force and more referenced readings than the warm-up needs.
    """
    referenced: dict[str, list[Reading]] = {}
    for readings in messages:
        for reading in readings:
            spec = fleet.instruments[reading.instrument_id]
            if (
                reading.reference is not None
                and spec.reference.kind is ReferenceKind.REFERENCE_INSTRUMENT
                and spec.reference.peer_group is None
                and fleet.calibrations[reading.instrument_id].valid_at(reading.ts) is not None
            ):
                referenced.setdefault(reading.instrument_id, []).append(reading)
    instrument_id = min(i for i, found in referenced.items() if len(found) > warm_up + 2)
    target = referenced[instrument_id][warm_up - 1]
    failing = target._replace(value=HUGE)
    replaced = [[failing if r is target else r for r in readings] for readings in messages]
    return replaced, failing


@pytest.fixture
def store(tmp_path: Path, example_fleet: Fleet) -> Iterator[SqliteStore]:
    """The embedded store, with the fleet registered, as a worker's sink writes to it."""
    opened = SqliteStore(tmp_path / "calstream.sqlite")
    opened.register_fleet(example_fleet)
    try:
        yield opened
    finally:
        opened.close()


def test_a_reading_step_raises_on_is_dead_lettered_and_the_rest_is_stored(
    example_fleet: Fleet, store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    warm_up = ProcessingPolicy().warm_up_residuals
    messages, failing = with_a_failing_reading(
        example_fleet, list(admitted_messages(example_fleet, days=0.5)), warm_up
    )
    embedded = FleetProcessor(example_fleet)
    expected, embedded_failures = [], []
    for readings in messages:
        output = embedded.process(readings)
        expected.extend(output.assessed)
        embedded_failures.extend(output.failed)
    ((failed_reading, error),) = embedded_failures
    assert failed_reading == failing and isinstance(error, ChartError)

    collected = Collected()

    def sink(batch: OutputBatch) -> None:
        collected(batch)
        store.write(batch)

    engine = make_app(example_fleet, sink=sink, sink_max_readings=300)

    async def scenario() -> dict[str, InstrumentState]:
        bind(engine)
        async with engine.process_readings.test_context() as agent:
            for readings in messages:
                await put_message(agent, example_fleet, readings)
            await engine.flush()
        return {i: decode_state(engine.states[i]) for i in example_fleet.instruments}

    started = time.time()
    states = run(scenario)
    finished = time.time()

    letters = [letter for batch in collected.batches for letter in batch.dead_letters]
    assert len(letters) == 1 and engine.dead_letters == 1
    (letter,) = letters
    assert started <= letter.received_at <= finished
    assert letter == DeadLetter(
        received_at=letter.received_at,
        topic=readings_topic(failing.tenant, failing.site, failing.gateway),
        reason=RejectReason.PROCESSING_ERROR,
        detail="ChartError: baseline sigma must be finite and > 0, got inf",
        excerpt=repr(failing)[:200],
        count=1,
        tenant=failing.tenant,
        instrument_id=failing.instrument_id,
        seq=failing.seq,
    )
    # The embedded runner's failure gives the same letter (the same builder, the same error).
    assert dead_letters_of_failed(embedded_failures, letter.received_at) == [letter]
    assert f"step failed on {failing.instrument_id} seq {failing.seq}" in caplog.text

    # Every other reading of the batch was processed, exactly as the embedded runner did.
    total = sum(len(readings) for readings in messages)
    assert len(expected) == total - 1 > 1_000
    assert failing not in [reading for reading, _ in collected.readings]
    assert sorted(collected.readings) == sorted(expected)
    assert states == embedded.states
    instrument_id = failing.instrument_id
    state = states[instrument_id]
    assert state.tracking.baseline is not None  # the next residual completed the warm-up
    assert state.tracking.warm_up.n == warm_up
    of_instrument = [
        r for readings in messages for r in readings if r.instrument_id == instrument_id
    ]
    assert state.readings == len(of_instrument) - 1

    # ...and stored, with the dead letter beside them.
    assert store.reading_count() == len(expected)
    assert store.dead_letters_by_reason() == {RejectReason.PROCESSING_ERROR.value: 1}
    assert store.recent_dead_letters(5) == [letter]
