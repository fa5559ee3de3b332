"""The distributed engine: a Faust app whose agent runs the per-key step of the embedded runner.

Topics (names from settings, defaults below):

- ``calstream.readings``: validated readings from ingest, keyed by :func:`routing_key`
  (``tenant/instrument``, or ``tenant/peers:group`` for a peer group); one record holds the
  readings one gateway message carried for that key (:mod:`stream_processors.routing`).
- ``calstream.calibrations``: compacted, keyed by instrument: the instrument's whole calibration
  history (every revision) as :func:`~stream_processors.codec.encode_calibrations` writes it.
  An agent copies it into a *global* table, so every worker holds every history (they are
  small) and no database is asked per reading.

Tables (RocksDB in production, each rebuilt from its changelog topic on another worker):

- ``instrument-state``: :func:`~stream_processors.codec.encode_state` of every instrument,
  keyed by instrument id, written from the event of the instrument's key (so it lives in the
  changelog partition of that key);
- ``peer-board``: the recent corrected values of every peer group, keyed by the group's key;
- ``calibrations`` (global): see above.

For every record the agent loads the states the key needs, runs
:func:`~stream_processors.keyed.complete_peer_references` and
:func:`~stream_processors.keyed.step_readings` (exactly what
:class:`~stream_processors.runner.FleetProcessor` runs), and *re-assigns* every changed value
(never mutates one in place: with RocksDB an in-place change is silently lost). Outputs
(readings with their assessments, status changes, latest states, and the dead letters of
readings `step` raised on, :mod:`stream_processors.dead_letters`) accumulate into one
:class:`~metrology.batch.OutputBatch` handed to the sink (``Store.write``) every
``sink_max_readings`` readings; the records behind a batch are acknowledged to Kafka only after
the sink returned, so a crash re-delivers them rather than losing their outputs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
from aiokafka.partitioner import murmur2
from tenacity import AsyncRetrying, retry_if_exception_type, wait_random_exponential

from metrology.assessment import HealthSnapshot
from metrology.batch import OutputBatch
from metrology.calibration import CalibrationHistory
from metrology.fleet import Fleet
from metrology.reading import Reading
from stream_processors.codec import (
    CODEC_VERSION,
    StateCodecError,
    decode_calibrations,
    decode_peer_group,
    decode_state,
    encode_calibrations,
    encode_peer_group,
    encode_state,
)
from stream_processors.context import InstrumentContext
from stream_processors.dead_letters import dead_letters_of_failed
from stream_processors.describe import describe
from stream_processors.keyed import (
    ProcessorOutput,
    complete_peer_references,
    instrument_contexts,
    peer_groups,
    policy_with_rule,
    step_readings,
)
from stream_processors.policy import ProcessingPolicy
from stream_processors.routing import (
    PEER_KEY_MARK,
    decode_readings_record,
    encode_readings_record,
    routing_key,
)
from stream_processors.state import InstrumentState
from stream_processors.step import assess_clock

__all__ = [
    "CalstreamFaust",
    "FaustTopics",
    "KeyedProcessing",
    "make_app",
]

log = logging.getLogger(__name__)

Sink = Callable[[OutputBatch], object]
"""Where a worker's outputs go: ``Store.write`` (blocking; run off the event loop)."""


@dataclass(frozen=True, slots=True)
class FaustTopics:
    """Kafka topic names (settings ``CALSTREAM_TOPIC_*``)."""

    readings: str = "calstream.readings"
    calibrations: str = "calstream.calibrations"


class KeyedProcessing:
    """One worker's processing of readings records against tables (no Faust in here).

    ``states``, ``boards`` and ``calibrations`` are mappings of encoded documents: Faust tables
    in a worker, plain dicts anywhere else. Everything read is decoded and everything changed is
    re-assigned encoded.
    """

    def __init__(
        self,
        fleet: Fleet,
        policy: ProcessingPolicy | None = None,
        *,
        states: Any,
        boards: Any,
        calibrations: Any,
        partitions: int = 1,
    ) -> None:
        self.fleet = fleet
        self.policy = policy or ProcessingPolicy()
        self.states = states
        self.boards = boards
        self.calibrations = calibrations
        self._contexts: dict[str, InstrumentContext] = instrument_contexts(fleet, self.policy)
        self._calibration_docs: dict[str, Any] = {}
        self._groups = peer_groups(fleet.instruments)
        self._members: dict[str, list[str]] = {}
        for instrument_id in self._groups:
            key = routing_key(fleet.instruments[instrument_id])
            self._members.setdefault(key, []).append(instrument_id)
        self.watermark: float | None = None
        """Newest reading time this worker processed (event time, as the embedded runner's)."""
        self._keys_by_partition: dict[int, list[tuple[str, list[str]]]] = {}
        keys: dict[str, list[str]] = {}
        for instrument_id, spec in fleet.instruments.items():
            keys.setdefault(routing_key(spec), []).append(instrument_id)
        for key, instrument_ids in keys.items():
            bucket = self._keys_by_partition.setdefault(partition_of(key, partitions), [])
            bucket.append((key, instrument_ids))

    def context(self, instrument_id: str) -> InstrumentContext:
        """The instrument's context, rebuilt when the calibration table holds a newer history."""
        document = self.calibrations.get(instrument_id)
        if document is not None and document != self._calibration_docs.get(instrument_id):
            spec = self.fleet.instruments[instrument_id]
            self._contexts[instrument_id] = InstrumentContext(
                spec, decode_calibrations(document), policy_with_rule(self.policy, spec)
            )
            self._calibration_docs[instrument_id] = document
        return self._contexts[instrument_id]

    def state(self, instrument_id: str) -> InstrumentState:
        document = self.states.get(instrument_id)
        return InstrumentState() if document is None else decode_state(document)

    def process(self, key: str, readings: list[Reading]) -> ProcessorOutput:
        """Run the step for one record's readings; re-assign every state and board it changed."""
        output = ProcessorOutput()
        members = self._members.get(key)
        ids = members if members is not None else sorted({r.instrument_id for r in readings})
        contexts = {i: self.context(i) for i in ids}
        states = {i: self.state(i) for i in ids}
        batch = readings
        if members is not None:
            group = key.partition(PEER_KEY_MARK)[2]
            board = decode_peer_group(self.boards.get(key), group)
            batch = complete_peer_references(batch, contexts, states, self._groups, board)
            self.boards[key] = encode_peer_group(board, group)
        self.watermark = step_readings(batch, contexts, states, output, self.watermark)
        for instrument_id in output.touched:
            self.states[instrument_id] = encode_state(states[instrument_id])
        return output

    def sweep(self, partition: int, at: float | None) -> ProcessorOutput:
        """Re-evaluate OFFLINE and due dates of the partition's instruments at ``at``.

        The embedded runner's :meth:`~stream_processors.runner.FleetProcessor.sweep`, for the
        instruments whose key lives in ``partition`` (so their states are re-assigned from an
        event of that partition: the changelog partition of the key).
        """
        output = ProcessorOutput()
        if self.watermark is not None and (at is None or self.watermark > at):
            at = self.watermark
        if at is None:
            return output
        for _key, instrument_ids in self._keys_by_partition.get(partition, ()):
            for instrument_id in instrument_ids:
                if instrument_id not in self.states:
                    continue
                state, change = assess_clock(
                    self.state(instrument_id), self.context(instrument_id), at
                )
                if change is not None:
                    self.states[instrument_id] = encode_state(state)
                    output.changes.append(change)
                    output.touched.add(instrument_id)
        return output

    def snapshots(self, instrument_ids: set[str]) -> list[HealthSnapshot]:
        """Latest health of the given instruments at the worker's watermark."""
        at = self.watermark or 0.0
        result = []
        for instrument_id in sorted(instrument_ids):
            state = self.state(instrument_id)
            if state.status is not None:
                result.append(describe(state, self.context(instrument_id), at))
        return result


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as aiokafka's) gives ``key``."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


@dataclass
class CalstreamFaust:
    """The app and its parts, as :func:`make_app` built them."""

    app: faust.App
    topics: FaustTopics
    readings_topic: Any
    calibrations_topic: Any
    states: Any
    boards: Any
    calibrations: Any
    processing: KeyedProcessing
    process_readings: Any
    """The agent on the readings topic (``.test_context()`` in tests)."""
    apply_calibrations: Any
    """The agent copying the compacted calibrations topic into the global table."""
    sink: Sink = field(default=lambda batch: None)
    sink_max_readings: int = 500
    sink_unavailable: tuple[type[BaseException], ...] = ()
    """What the sink raises when it cannot take a batch now: retried with back-off."""
    pending: OutputBatch = field(default_factory=OutputBatch)
    pending_events: list[Any] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    flushes: int = 0
    dead_letters: int = 0
    """Readings dead-lettered because `step` raised on them (reason ``processing_error``)."""

    async def flush(self) -> None:
        """Write the pending outputs (retrying while the store fails), then ack their records."""
        if not self.pending_events:
            return
        batch, events = self.pending, self.pending_events
        batch.snapshots = self.processing.snapshots(self.touched)
        self.pending, self.pending_events, self.touched = OutputBatch(), [], set()
        loop = asyncio.get_running_loop()
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(self.sink_unavailable),
            wait=wait_random_exponential(multiplier=0.1, max=5.0),
        ):
            with attempt:
                await loop.run_in_executor(None, self.sink, batch)
        self.flushes += 1
        for event in events:
            event.ack()

    async def publish_calibrations(self, histories: Mapping[str, CalibrationHistory]) -> None:
        """Send calibration histories to the compacted topic (a registry change, or seeding)."""
        for instrument_id, history in histories.items():
            await self.calibrations_topic.send(
                key=instrument_id, value=encode_calibrations(history)
            )

    async def send_readings(self, key: str, readings: list[Reading]) -> None:
        """Send one readings record (ingest does this through its own producer)."""
        await self.readings_topic.send(key=key, value=encode_readings_record(key, readings))


def make_app(
    fleet: Fleet,
    *,
    broker: str | list[str] = "kafka://localhost:9092",
    store: str = "memory://",
    app_id: str = "calstream",
    policy: ProcessingPolicy | None = None,
    sink: Sink | None = None,
    sink_unavailable: tuple[type[BaseException], ...] = (),
    topics: FaustTopics | None = None,
    partitions: int = 12,
    data_dir: Path | None = None,
    standby_replicas: int = 1,
    sink_max_readings: int = 500,
    sink_linger_s: float = 1.0,
    sweep_every_s: float = 10.0,
) -> CalstreamFaust:
    """A Faust app for ``fleet``: topics, tables and agents, with outputs going to ``sink``.

    A ``sink`` that raises one of ``sink_unavailable`` (the store's unavailability) is retried
    with jittered back-off; nothing is acknowledged to Kafka meanwhile.

    ``store`` is ``"memory://"`` (tests, or state rebuilt from the changelog at every start) or
    ``"rocksdb://"`` (production: state on local disk under ``data_dir``, restored from the
    changelog only for partitions new to the worker). ``partitions`` is the readings topic's
    partition count, fixed when the topic is created: the ceiling of workers that share the work.
    """
    topics = topics or FaustTopics()
    settings: dict[str, Any] = {
        "broker": broker,
        "store": store,
        "autodiscover": False,
        "topic_partitions": partitions,
        "table_standby_replicas": standby_replicas,
        "web_enabled": False,
        "producer_acks": -1,
    }
    if data_dir is not None:
        settings["datadir"] = str(data_dir)
    app = faust.App(app_id, **settings)
    readings_topic = app.topic(
        topics.readings, key_type=str, value_serializer="json", partitions=partitions
    )
    calibrations_topic = app.topic(
        topics.calibrations,
        key_type=str,
        value_serializer="json",
        partitions=partitions,
        compacting=True,
        deleting=False,
    )
    states = app.Table("instrument-state", partitions=partitions, key_type=str)
    boards = app.Table("peer-board", partitions=partitions, key_type=str)
    calibrations = app.GlobalTable("calibrations", partitions=partitions, key_type=str)
    processing = KeyedProcessing(
        fleet, policy, states=states, boards=boards, calibrations=calibrations,
        partitions=partitions,
    )  # fmt: skip

    async def process_readings(stream: Any) -> Any:
        async for event in stream.noack().events():
            tick = event.value.get("tick", False) if isinstance(event.value, dict) else False
            if tick is not False:
                output = processing.sweep(event.message.partition, tick)
            else:
                try:
                    key, readings = decode_readings_record(event.value)
                    output = processing.process(key, readings)
                except (StateCodecError, KeyError) as exc:
                    # Ingest admitted it, so this is a defect or a foreign producer: logged with
                    # the record, skipped (acknowledged with the next flush), never a crash.
                    log.error("unreadable readings record %.200r: %s", event.value, exc)
                    output = ProcessorOutput()
            if output.failed:
                # As the embedded pipeline: logged, dead-lettered and written with the batch.
                letters = dead_letters_of_failed(output.failed, time.time())
                engine.pending.dead_letters.extend(letters)
                engine.dead_letters += len(letters)
            engine.pending.readings.extend(output.assessed)
            engine.pending.changes.extend(output.changes)
            engine.touched |= output.touched
            engine.pending_events.append(event)
            if len(engine.pending.readings) >= engine.sink_max_readings:
                await engine.flush()
            yield output

    async def apply_calibrations(stream: Any) -> Any:
        async for instrument_id, document in stream.items():
            if instrument_id not in fleet.instruments:
                log.warning("calibration for unregistered instrument %r ignored", instrument_id)
                yield None
                continue
            try:
                decode_calibrations(document)  # refuse here what no worker could read
            except StateCodecError as exc:
                log.error("calibration of %s refused: %s", instrument_id, exc)
                yield None
                continue
            calibrations[instrument_id] = document
            yield instrument_id

    async def flush_on_idle() -> None:
        await engine.flush()

    readings_agent = app.agent(readings_topic, name="process-readings")(process_readings)
    calibrations_agent = app.agent(calibrations_topic, name="apply-calibrations")(
        apply_calibrations
    )

    async def send_ticks() -> None:
        # The clock of OFFLINE and due dates: the leader asks every partition to sweep at the
        # newest reading time it knows (a worker never sweeps behind its own).
        for partition in range(partitions):
            await readings_topic.send(
                key=None, value={"v": CODEC_VERSION, "tick": processing.watermark},
                partition=partition,
            )  # fmt: skip

    app.timer(sink_linger_s, name="flush-outputs")(flush_on_idle)
    app.timer(sweep_every_s, on_leader=True, name="clock-ticks")(send_ticks)
    engine = CalstreamFaust(
        app=app,
        topics=topics,
        readings_topic=readings_topic,
        calibrations_topic=calibrations_topic,
        states=states,
        boards=boards,
        calibrations=calibrations,
        processing=processing,
        process_readings=readings_agent,
        apply_calibrations=calibrations_agent,
        sink=sink or _discard,
        sink_max_readings=sink_max_readings,
        sink_unavailable=sink_unavailable,
    )
    return engine


def _discard(batch: OutputBatch) -> None:
    """No sink configured: outputs are dropped (a worker always gets one from the wiring)."""
