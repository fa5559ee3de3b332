"""Driving the Faust app through Faust's own test harness (``agent.test_context()``), no Kafka.

Tests are plain functions that call :func:`run` with a coroutine: each gets a fresh event loop,
bound to the app (``app.loop``) before any agent starts. Each test builds its own app with
:func:`stream_processors.faust_app.make_app`, so no table outlives a test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from edge_sim.simulator import FleetSimulator
from ingest.admission import Admission, AdmissionPolicy
from metrology.batch import OutputBatch
from metrology.fleet import Fleet
from metrology.reading import Reading
from metrology.timebase import SECONDS_PER_DAY
from metrology.wire import DecodedMessage, readings_topic
from stream_processors.faust_app import CalstreamFaust
from stream_processors.routing import encode_readings_record, keyed_records

T = TypeVar("T")


def run(coroutine: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(coroutine())  # type: ignore[arg-type]


def bind(engine: CalstreamFaust) -> None:
    """Bind the app to the running loop (Faust otherwise pins one that never runs)."""
    engine.app.loop = asyncio.get_running_loop()


@dataclass
class Collected:
    """What the sink was given, batch by batch."""

    batches: list[OutputBatch] = field(default_factory=list)

    def __call__(self, batch: OutputBatch) -> None:
        self.batches.append(batch)

    @property
    def readings(self) -> list[tuple[Any, Any]]:
        return [pair for batch in self.batches for pair in batch.readings]

    @property
    def changes(self) -> list[Any]:
        return [change for batch in self.batches for change in batch.changes]


def admitted_messages(fleet: Fleet, days: float, seed: int = 11) -> Iterator[list[Reading]]:
    """The admitted readings of every simulated gateway message over the fleet's last ``days``."""
    end = fleet.as_of or 0.0
    simulator = FleetSimulator(fleet, seed=seed, start=end - days * SECONDS_PER_DAY, end=end)
    admission = Admission(fleet.instruments, AdmissionPolicy())
    for tenant, site, gateway, batch in simulator:
        message = DecodedMessage(readings_topic(tenant, site, gateway), batch, [])
        admitted, rejections = admission.admit(message, batch[-1].ts)
        assert not rejections
        yield admitted


async def put_message(agent: Any, fleet: Fleet, readings: list[Reading]) -> int:
    """Put one message's readings into the agent as ingest forwards them: one record per key."""
    records = keyed_records(readings, fleet.instruments)
    for key, part in records:
        await agent.put(encode_readings_record(key, part), key=key)
    return len(records)
