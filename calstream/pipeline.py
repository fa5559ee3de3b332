"""The embedded pipeline: MQTT -> decode -> admission -> step -> SQLite, acknowledged when durable.

One processing thread takes what the subscriber received, in batches of messages, and for each
batch: decodes and admits every message (bad input becomes dead letters), runs the fleet
processor, writes readings, assessments, latest states, status changes and dead letters in one
transaction, and only then acknowledges the messages to the broker and publishes the alerts.
A crash before the commit loses nothing: the broker re-delivers, and the store's writes are
idempotent on (instrument, timestamp, sequence).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tenacity import Retrying, retry_if_exception_type, wait_random_exponential

from calstream.observability import PipelineMetrics
from ingest.admission import Admission
from ingest.subscriber import DurableSubscriber, InboundMessage
from metrology.assessment import HealthSnapshot, StatusChange
from metrology.wire import (
    DeadLetter,
    RejectReason,
    Topic,
    alerts_topic,
    decode,
    encode_status_change,
    parse_topic,
    payload_excerpt,
    readings_topic,
)
from storage.batch import StoreBatch, WriteResult
from storage.errors import StorageError
from storage.sqlite_store import SqliteStore
from stream_processors.runner import FleetProcessor

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PipelineCounters:
    """Reading counts since start: ``received == accepted + rejected``."""

    messages: int = 0
    received: int = 0
    accepted: int = 0
    stored: int = 0
    duplicates_in_store: int = 0
    rejected: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    alerts: int = 0
    batches: int = 0
    first_received_at: float | None = None
    decode_s: float = 0.0
    admit_s: float = 0.0
    step_s: float = 0.0
    snapshot_s: float = 0.0
    store_s: float = 0.0
    ack_s: float = 0.0

    def timings(self) -> dict[str, float]:
        """Seconds spent in each phase since start (where the time goes)."""
        return {
            "decode": self.decode_s,
            "admit": self.admit_s,
            "step": self.step_s,
            "snapshot": self.snapshot_s,
            "store": self.store_s,
            "ack": self.ack_s,
        }


class Pipeline:
    """Wires a subscriber, admission, the fleet processor and the store; runs in one thread."""

    def __init__(
        self,
        subscriber: DurableSubscriber,
        admission: Admission,
        processor: FleetProcessor,
        store: SqliteStore,
        *,
        clock: Callable[[], float] = time.time,
        max_messages_per_batch: int = 500,
        linger_s: float = 0.05,
        sweep_every_s: float = 1.0,
        snapshot_every_s: float = 1.0,
    ) -> None:
        self.subscriber = subscriber
        self.admission = admission
        self.processor = processor
        self.store = store
        self.counters = PipelineCounters()
        self._clock = clock
        self._max_messages = max_messages_per_batch
        self._linger_s = linger_s
        self._sweep_every_s = sweep_every_s
        self._last_sweep = 0.0
        self._snapshot_every_s = snapshot_every_s
        self._last_snapshot = 0.0
        self._dirty: set[str] = set()
        """Instruments whose latest state changed since it was last stored."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        self._writes: queue.Queue[tuple[list[InboundMessage], StoreBatch] | None] = queue.Queue(
            maxsize=2
        )
        self.error: BaseException | None = None
        self.metrics = PipelineMetrics()
        self.metrics.watch(self)

    def process(self, messages: list[InboundMessage]) -> StoreBatch:
        """Decode, admit and process messages; returns what must be written (pure of I/O)."""
        counters = self.counters
        now = self._clock()
        batch = StoreBatch()
        admitted = []
        clock = time.perf_counter
        decode_s = admit_s = 0.0
        for message in messages:
            started = clock()
            decoded = decode(message.topic, message.payload)
            decoded_at = clock()
            readings, rejections = self.admission.admit(decoded, now)
            admit_s += clock() - decoded_at
            decode_s += decoded_at - started
            admitted.extend(readings)
            counters.messages += 1
            counters.accepted += len(readings)
            received = len(readings)
            if rejections:
                excerpt = payload_excerpt(message.payload)
                tenant = _tenant_of(message.topic)
                for rejection in rejections:
                    received += rejection.count
                    counters.rejected += rejection.count
                    counters.rejected_by_reason[rejection.reason.value] += rejection.count
                    batch.dead_letters.append(
                        DeadLetter(
                            received_at=message.received_at,
                            topic=message.topic,
                            reason=rejection.reason,
                            detail=rejection.detail,
                            excerpt=excerpt,
                            count=rejection.count,
                            tenant=tenant,
                            instrument_id=rejection.instrument_id,
                            seq=rejection.seq,
                        )
                    )
            counters.received += received
        counters.decode_s += decode_s
        counters.admit_s += admit_s
        started = clock()
        output = self.processor.process(admitted)
        for reading, error in output.failed:
            log.error(
                "step failed on %s seq %s", reading.instrument_id, reading.seq, exc_info=error
            )
            counters.accepted -= 1
            counters.rejected += 1
            counters.rejected_by_reason[RejectReason.PROCESSING_ERROR.value] += 1
            batch.dead_letters.append(
                DeadLetter(
                    received_at=now,
                    topic=readings_topic(reading.tenant, reading.site, reading.gateway),
                    reason=RejectReason.PROCESSING_ERROR,
                    detail=f"{type(error).__name__}: {error}",
                    excerpt=repr(reading)[:200],
                    tenant=reading.tenant,
                    instrument_id=reading.instrument_id,
                    seq=reading.seq,
                )
            )
        batch.readings = output.assessed
        batch.changes = output.changes
        self._dirty |= output.touched
        if now - self._last_sweep >= self._sweep_every_s:
            self._last_sweep = now
            batch.changes.extend(self.processor.sweep())
        stepped = clock()
        batch.snapshots = self._due_snapshots(batch.changes, now)
        counters.step_s += stepped - started
        counters.snapshot_s += clock() - stepped
        return batch

    def _due_snapshots(self, changes: list[StatusChange], now: float) -> list[HealthSnapshot]:
        """Latest states to store: at once for a status change, else at most every second.

        The numbers of an instrument's latest state change with every reading; writing them
        for every batch would cost more than the readings themselves on a large fleet.
        """
        if now - self._last_snapshot >= self._snapshot_every_s:
            self._last_snapshot = now
            due = self._dirty | {c.instrument_id for c in changes}
            self._dirty = set()
        else:
            due = {c.instrument_id for c in changes}
            self._dirty -= due
        return self.processor.snapshots(due)

    def run_once(self, timeout: float = 0.2) -> int:
        """Handle one batch of messages if any arrive within ``timeout``; returns readings received.

        With the writer thread running (:meth:`start`), the batch is handed to it (waiting while
        two batches are already queued); otherwise it is written here. Either way the messages
        are acknowledged only after their batch is committed.
        """
        messages = self.subscriber.get_batch(self._max_messages, timeout, self._linger_s)
        if not messages:
            return 0
        counters = self.counters
        if counters.first_received_at is None:
            counters.first_received_at = messages[0].received_at
        received_before = counters.received
        batch = self.process(messages)
        if self._writer is not None:
            self._writes.put((messages, batch))
        else:
            self._commit(messages, batch)
        return counters.received - received_before

    def _commit(self, messages: list[InboundMessage], batch: StoreBatch) -> None:
        """Write a batch durably (retrying while the store is unavailable), then acknowledge it."""
        counters = self.counters
        started = time.perf_counter()
        result = self._write_until_durable(batch)
        stored = time.perf_counter()
        self.metrics.store_write_seconds.observe(stored - started)
        self.metrics.received_to_stored_seconds.observe(time.time() - messages[0].received_at)
        self.subscriber.ack(messages)
        self._publish_alerts(batch.changes)
        counters.ack_s += time.perf_counter() - stored
        counters.store_s += stored - started
        counters.stored += result.readings_inserted
        counters.duplicates_in_store += result.readings_duplicate
        counters.batches += 1

    def _write_until_durable(self, batch: StoreBatch) -> WriteResult:
        """The store's write, retried with jittered back-off while it fails.

        Nothing is acknowledged meanwhile, so the broker keeps the messages, and the bounded
        hand-over queue stops the processing thread: back-pressure, not loss.
        """
        retrying = Retrying(
            retry=retry_if_exception_type(StorageError),
            wait=wait_random_exponential(multiplier=0.1, max=5.0),
            before_sleep=lambda state: log.warning(
                "store unavailable (attempt %d): %s; retrying",
                state.attempt_number,
                state.outcome.exception() if state.outcome else "",
            ),
        )
        return retrying(self.store.write, batch)

    def _publish_alerts(self, changes: list[StatusChange]) -> None:
        for change in changes:
            self.subscriber.publish(alerts_topic(change.tenant), encode_status_change(change))
        self.counters.alerts += len(changes)

    # --- thread lifecycle ---

    @property
    def write_backlog(self) -> int:
        """Processed batches waiting for the writer thread."""
        return self._writes.qsize()

    def alive(self) -> bool:
        """The processing thread runs and nothing has stopped it (liveness)."""
        return self._thread is not None and self._thread.is_alive() and self.error is None

    def start(self, write_behind: bool = False) -> None:
        """Run in a background thread; ``write_behind`` writes on a second thread."""
        if write_behind:
            self._writer = threading.Thread(
                target=self._write_loop, name="calstream-writer", daemon=True
            )
            self._writer.start()
        self._thread = threading.Thread(target=self._run, name="calstream-pipeline", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.run_once()
        except BaseException as exc:  # surfaced to the caller through .error and the log
            log.exception("pipeline stopped by an unexpected error")
            self.error = exc

    def _write_loop(self) -> None:
        try:
            while (item := self._writes.get()) is not None:
                self._commit(*item)
        except BaseException as exc:
            log.exception("pipeline writer stopped by an unexpected error")
            self.error = exc

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batches in hand (written and acknowledged), then stop both threads."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._writer is not None:
            self._writes.put(None)
            self._writer.join(timeout)
            self._writer = None

    def final_sweep(self) -> int:
        """Re-evaluate time-driven conditions once more and store them (end of a run)."""
        changes = self.processor.sweep()
        touched = self._dirty | {c.instrument_id for c in changes}
        self._dirty = set()
        batch = StoreBatch(changes=changes, snapshots=self.processor.snapshots(touched))
        self.store.write(batch)
        self._publish_alerts(changes)
        return len(changes)


def _tenant_of(topic: str) -> str | None:
    parsed = parse_topic(topic)
    return parsed.tenant if isinstance(parsed, Topic) else None
