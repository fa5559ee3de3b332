"""The embedded pipeline: MQTT -> decode -> admission -> step -> SQLite, acknowledged when durable.

One processing thread takes what the subscriber received, in batches of messages, and for each
batch: decodes and admits every message (bad input becomes dead letters), runs the fleet
processor, writes readings, assessments, latest states, status changes and dead letters in one
transaction, and only then acknowledges the messages to the broker and publishes the alerts.
A crash before the commit loses nothing: the broker re-delivers, and the store's writes are
idempotent on (instrument, timestamp, sequence).

While the store is unavailable, with a :class:`~calstream.runtime.journal.Journal` configured, a
batch the store refused is appended to the journal (on disk, fsynced) and its messages
acknowledged; later batches follow it into the journal while it holds anything, and the journal
is replayed into the store, oldest first, whenever the store answers again. A full journal (its
``max_bytes``) stops the acknowledgements: the broker keeps the messages (back-pressure).
Without a journal, a failed write is retried with back-off and nothing is acknowledged meanwhile.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tenacity import Retrying, retry_if_exception_type, wait_random_exponential

from calstream.notify.channel import AlertChannel
from calstream.notify.mqtt import MqttAlerts
from calstream.runtime.in_hand import InHandLedger
from calstream.runtime.journal import (
    Journal,
    JournalDepth,
    JournalEntry,
    JournalError,
    encode_batch,
)
from calstream.runtime.observability import PipelineMetrics
from calstream.runtime.registry_sync import RegistrySync
from ingest.admission import Admission
from ingest.intake import take_batch
from ingest.subscriber import DurableSubscriber, InboundMessage
from metrology.assessment import HealthSnapshot, StatusChange
from metrology.batch import OutputBatch
from metrology.wire import (
    DeadLetter,
    Rejection,
    RejectReason,
    alerts_topic,
    dead_letters_of,
    readings_topic,
)
from storage.batch import WriteResult
from storage.contract import Store
from storage.errors import StorageError
from stream_processors.dead_letters import dead_letters_of_failed
from stream_processors.runner import FleetProcessor

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Commit:
    """A processed batch on its way to the store, and what to do once it is acknowledged."""

    messages: list[InboundMessage]
    batch: OutputBatch
    token: int | None
    """The in-hand ledger's record of the messages (released after the acknowledgement)."""


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
    journaled: int = 0
    """Readings appended to the journal because the store could not take them (then replayed)."""
    journal_full: int = 0
    """Times the journal was full and the pipeline fell back to back-pressure."""
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
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        max_messages_per_batch: int = 500,
        linger_s: float = 0.05,
        sweep_every_s: float = 1.0,
        snapshot_every_s: float = 1.0,
        journal: Journal | None = None,
        drain_budget_s: float = 1.0,
        ledger: InHandLedger | None = None,
        crash_on: bytes | None = None,
        alerts: AlertChannel | None = None,
        registry: RegistrySync | None = None,
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
        self._drainer: threading.Thread | None = None
        self._stop_draining = threading.Event()
        self._count_lock = threading.Lock()
        """The writer and the journal's drainer both count stored readings."""
        self._writes: queue.Queue[_Commit | None] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.journal = journal
        self._drain_budget_s = drain_budget_s
        self._store_retry_at = 0.0
        """Monotonic time before which a journal replay is not attempted (back-off)."""
        self._store_failures = 0
        self.journal_is_full = False
        """The journal refused the batch in hand: nothing is acknowledged (back-pressure)."""
        self._full_logged_at = -60.0
        self.alerts: AlertChannel = alerts or MqttAlerts(subscriber)
        """Where the status changes of committed batches go (default: the MQTT alert topic)."""
        self.registry = registry
        """Applies registry changes between batches (new instruments, certificates, retirements)."""
        self._registry_failing_since: float | None = None
        self.ledger = ledger
        """Records what is in hand before it is processed (poison-message immunity)."""
        self._crash_on = crash_on
        """Fault injection for the tests only (``CALSTREAM_FAULT_CRASH_ON``)."""
        self.metrics = PipelineMetrics()
        self.metrics.watch(self)

    def process(self, messages: list[InboundMessage]) -> OutputBatch:
        """Decode, admit and process messages; returns what must be written (pure of I/O)."""
        counters = self.counters
        now = self._clock()
        batch = OutputBatch()
        intake = take_batch(self.admission, messages, now)
        admitted = intake.readings
        counters.messages += len(messages)
        counters.received += intake.received
        counters.accepted += intake.accepted
        counters.rejected += intake.rejected
        counters.rejected_by_reason.update(intake.rejected_by_reason)
        counters.decode_s += intake.decode_s
        counters.admit_s += intake.admit_s
        batch.dead_letters.extend(intake.dead_letters)
        clock = time.perf_counter
        started = clock()
        output = self.processor.process(admitted)
        if output.failed:
            failed = dead_letters_of_failed(output.failed, now)
            counters.accepted -= len(failed)
            counters.rejected += len(failed)
            counters.rejected_by_reason[RejectReason.PROCESSING_ERROR.value] += len(failed)
            batch.dead_letters.extend(failed)
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
        if self.registry is not None:  # after the wait: what was registered before it counts
            self._sync_registry()
        if not messages:
            return 0
        counters = self.counters
        if counters.first_received_at is None:
            counters.first_received_at = messages[0].received_at
        received_before = counters.received
        if self.ledger is None:
            self._handle(messages)
        else:
            triage = self.ledger.triage(messages)
            if triage.poison:
                self._file_poison(triage.poison)
            for suspect in triage.suspects:  # alone: a crash now points at this message only
                self._handle([suspect])
            if triage.ordinary:
                self._handle(triage.ordinary)
        return counters.received - received_before

    def _sync_registry(self) -> None:
        """Apply registry changes; a registry that does not answer delays them, nothing else."""
        assert self.registry is not None
        try:
            self.registry.poll()
        except StorageError as exc:
            if self._registry_failing_since is None:
                self._registry_failing_since = time.monotonic()
                log.warning("registry changes not applied (%s); trying again", exc)
        else:
            if self._registry_failing_since is not None:
                log.warning("registry answers again: changes applied")
                self._registry_failing_since = None

    def _handle(self, messages: list[InboundMessage]) -> None:
        """Record the messages in hand, process them, and hand the batch to be committed."""
        token = None if self.ledger is None else self.ledger.hold(messages)
        if self._crash_on is not None and any(self._crash_on in m.payload for m in messages):
            log.error("fault injection: killing the pipeline process with a message in hand")
            os.kill(os.getpid(), signal.SIGKILL)
        self._hand_over(_Commit(messages, self.process(messages), token))

    def _hand_over(self, commit: _Commit) -> None:
        if self._writer is not None:
            self._writes.put(commit)
        else:
            self._commit(commit)

    def _file_poison(self, poisoned: list[tuple[InboundMessage, int]]) -> None:
        """Dead letters for messages in hand at too many crashes: never processed again."""
        counters = self.counters
        letters = []
        for message, crashes in poisoned:
            detail = (
                f"the pipeline process died {crashes} times with this message in hand: it is not "
                "processed again (the readings it carries are not counted one by one)"
            )
            [letter] = dead_letters_of(
                message.topic,
                message.payload,
                message.received_at,
                [Rejection(RejectReason.POISON_MESSAGE, detail)],
            )
            letters.append(letter)
            log.error("poison message on %s: %s", message.topic, detail)
        counters.messages += len(poisoned)
        counters.received += len(poisoned)
        counters.rejected += len(poisoned)
        counters.rejected_by_reason[RejectReason.POISON_MESSAGE.value] += len(poisoned)
        messages = [message for message, _ in poisoned]
        # Not released: a poison message sent again is filed at once (the ledger forgets it
        # only when it has not come back for a long time).
        self._hand_over(_Commit(messages, OutputBatch(dead_letters=letters), None))

    def _commit(self, commit: _Commit) -> None:
        """Make a batch durable (in the store, or in the journal), then acknowledge it."""
        messages, batch = commit.messages, commit.batch
        counters = self.counters
        started = time.perf_counter()
        received_at = messages[0].received_at
        if self.journal is None:
            result: WriteResult | None = self._write_until_durable(batch)
        else:
            result = self._store_or_journal(batch, received_at)
        stored = time.perf_counter()
        if result is not None:
            self.metrics.store_write_seconds.observe(stored - started)
            self.metrics.received_to_stored_seconds.observe(time.time() - received_at)
            with self._count_lock:
                counters.stored += result.readings_inserted
                counters.duplicates_in_store += result.readings_duplicate
        self.subscriber.ack(messages)
        if self.ledger is not None and commit.token is not None:
            self.ledger.release(commit.token, messages)
        self._publish_alerts(batch.changes)
        counters.ack_s += time.perf_counter() - stored
        counters.store_s += stored - started
        counters.batches += 1

    def _write(self, batch: OutputBatch) -> WriteResult:
        """The store's write; what the store cannot *encode* does not stop the pipeline.

        A :class:`StorageError` (the store away, locked, full) is the platform's failure: it is
        raised for the caller to retry or journal. Anything else the store raises is a defect
        reached by one item of the batch: the batch is written item by item, and each reading
        the store refuses becomes a dead letter (``store_refused``) with the exception's type
        and message; the rest is stored.
        """
        try:
            return self.store.write(batch)
        except StorageError:
            raise
        except Exception as exc:
            log.exception("the store refused a batch (%s): writing it item by item", exc)
            return self._write_item_by_item(batch)

    def _write_item_by_item(self, batch: OutputBatch) -> WriteResult:
        results: list[WriteResult] = []
        refused: list[DeadLetter] = []
        parts = [
            *(OutputBatch(readings=[pair]) for pair in batch.readings),
            *(OutputBatch(snapshots=[s]) for s in batch.snapshots),
            *(OutputBatch(changes=[c]) for c in batch.changes),
            *(OutputBatch(dead_letters=[d]) for d in batch.dead_letters),
        ]
        for part in parts:
            try:
                results.append(self.store.write(part))
            except StorageError:
                raise
            except Exception as exc:
                refused.append(self._refusal(part, exc))
        if refused:
            counters = self.counters
            readings = sum(1 for letter in refused if letter.seq is not None)
            with self._count_lock:
                counters.accepted -= readings
                counters.rejected += readings
                counters.rejected_by_reason[RejectReason.STORE_REFUSED.value] += readings
            results.append(self.store.write(OutputBatch(dead_letters=refused)))
        return WriteResult(
            readings_inserted=sum(r.readings_inserted for r in results),
            readings_duplicate=sum(r.readings_duplicate for r in results),
            changes=sum(r.changes for r in results),
            dead_letters=sum(r.dead_letters for r in results),
        )

    def _refusal(self, part: OutputBatch, exc: Exception) -> DeadLetter:
        """The dead letter of one item the store could not encode (its kind, key and error)."""
        error = f"{type(exc).__name__}: {exc}".encode("utf-8", "backslashreplace").decode()
        detail = f"the store could not encode it: {error}"[:500]
        now = self._clock()
        if part.readings:
            reading, _ = part.readings[0]
            return DeadLetter(
                received_at=now,
                topic=readings_topic(reading.tenant, reading.site, reading.gateway),
                reason=RejectReason.STORE_REFUSED,
                detail=detail,
                excerpt=ascii(reading)[:200],
                tenant=reading.tenant,
                instrument_id=reading.instrument_id,
                seq=reading.seq,
            )
        item = (part.snapshots or part.changes or part.dead_letters)[0]
        tenant = getattr(item, "tenant", None)
        instrument = getattr(item, "instrument_id", None)
        kind = type(item).__name__
        log.error("the store could not encode a %s of %s: %s", kind, instrument, detail)
        return DeadLetter(
            received_at=now,
            topic=getattr(item, "topic", "") or (alerts_topic(tenant) if tenant else ""),
            reason=RejectReason.STORE_REFUSED,
            detail=f"{kind}: {detail}",
            excerpt=ascii(item)[:200],
            tenant=tenant,
            instrument_id=instrument,
        )

    def _write_until_durable(self, batch: OutputBatch) -> WriteResult:
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
        return retrying(self._write, batch)

    # --- the journal ---

    def _store_or_journal(self, batch: OutputBatch, received_at: float) -> WriteResult | None:
        """Write to the store, or append to the journal; None when journalled.

        Order is kept: while the journal holds batches, this one goes behind them. When the
        journal is full, this waits (not acknowledging: back-pressure) until a replay makes room
        or the store takes the batch directly.
        """
        journal = self.journal
        assert journal is not None
        body: bytes | None = None
        while True:
            if self._drainer is None and not journal.empty:
                self.drain_journal(self._drain_budget_s)  # no drainer thread: replay here
            if journal.empty:
                try:
                    result = self._write(batch)
                except StorageError as exc:
                    self._store_failed(exc)
                else:
                    self._store_answered()
                    self._acknowledging_again()
                    return result
            if body is None:
                body = encode_batch(batch)
            problem = None
            if journal.fits(len(body)):
                try:
                    journal.append(body, len(batch.readings), received_at)
                except JournalError as exc:  # its disk full, say: treated as a full journal
                    problem = str(exc)
                else:
                    self.counters.journaled += len(batch.readings)
                    self._acknowledging_again()
                    return None
            if not self.journal_is_full:
                self.journal_is_full = True
                self.counters.journal_full += 1
            if time.monotonic() - self._full_logged_at >= 60.0:  # once a minute, not per batch
                self._full_logged_at = time.monotonic()
                depth = journal.depth
                log.error(
                    "journal full (%d bytes in %d batches, limit %d%s): not acknowledging; the "
                    "broker keeps the messages until the store answers",
                    depth.bytes,
                    depth.batches,
                    journal.max_bytes,
                    f"; {problem}" if problem else "",
                )
            if self._stop_waiting():
                raise JournalError("stopped while the journal was full and the store unavailable")

    def _acknowledging_again(self) -> None:
        if self.journal_is_full:
            self.journal_is_full = False
            log.info("journal has room again: acknowledging messages again")

    def _stop_waiting(self) -> bool:
        """Wait for a replay to make room or the next store attempt; True if told to stop."""
        delay = min(0.5, max(0.05, self._store_retry_at - time.monotonic()))
        return self._stop.wait(delay)

    def _store_failed(self, exc: StorageError) -> None:
        self._store_failures += 1
        # Jittered exponential back-off between attempts, at most 5 s (replays are cheap to
        # retry, but a store that blocks, such as SQLite waiting on a lock, holds the thread).
        delay = random.uniform(0, min(5.0, 0.1 * 2**self._store_failures))
        self._store_retry_at = time.monotonic() + delay
        if self._store_failures == 1:
            log.warning("store unavailable: %s; journalling batches until it answers", exc)

    def _store_answered(self) -> None:
        if self._store_failures:
            log.warning("store answers again after %d failed attempts", self._store_failures)
        self._store_failures = 0
        self._store_retry_at = 0.0

    def drain_journal(self, budget_s: float | None = None) -> bool:
        """Replay journal entries into the store, oldest first; True once the journal is empty.

        Stops at the first failure (the store is still away; the next attempt waits for the
        back-off) or, with ``budget_s``, once that long was spent, so the batches in hand keep
        moving. An entry is removed only after the store's write of it returned.
        """
        journal = self.journal
        if journal is None or journal.empty:
            return True
        if time.monotonic() < self._store_retry_at:
            return False
        deadline = None if budget_s is None else time.monotonic() + budget_s
        while (entry := journal.oldest()) is not None:
            started = time.perf_counter()
            try:
                result = self._write(entry.batch)
            except StorageError as exc:
                self._store_failed(exc)
                return False
            self._store_answered()
            journal.remove(entry)
            self._count_replayed(entry, result, time.perf_counter() - started)
            if deadline is not None and time.monotonic() >= deadline:
                break
        if journal.empty:
            log.warning("journal drained into the store")
        return journal.empty

    def _count_replayed(self, entry: JournalEntry, result: WriteResult, seconds: float) -> None:
        counters = self.counters
        with self._count_lock:
            counters.stored += result.readings_inserted
            counters.duplicates_in_store += result.readings_duplicate
        self.metrics.store_write_seconds.observe(seconds)
        self.metrics.received_to_stored_seconds.observe(time.time() - entry.received_at)

    def _publish_alerts(self, changes: list[StatusChange]) -> None:
        self.alerts.send(changes)
        self.counters.alerts += len(changes)

    # --- thread lifecycle ---

    @property
    def journal_depth(self) -> JournalDepth:
        """What the journal holds (all zero without a journal)."""
        return self.journal.depth if self.journal is not None else JournalDepth(0, 0, 0)

    @property
    def write_backlog(self) -> int:
        """Processed batches waiting for the writer thread."""
        return self._writes.qsize()

    def alive(self) -> bool:
        """The processing thread runs and nothing has stopped it (liveness)."""
        return self._thread is not None and self._thread.is_alive() and self.error is None

    def start(self, write_behind: bool = False) -> None:
        """Run in a background thread; ``write_behind`` writes on a second thread.

        With a journal, a third thread replays it into the store whenever it holds batches
        (so a store that blocks, such as SQLite waiting on a lock, never holds up the batches
        going into the journal behind it).
        """
        if self.journal is not None:
            self._drainer = threading.Thread(
                target=self._drain_loop, name="calstream-journal", daemon=True
            )
            self._drainer.start()
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

    def _drain_loop(self) -> None:
        try:
            while not self._stop_draining.wait(0.05):
                self.drain_journal()
        except BaseException as exc:
            log.exception("journal replay stopped by an unexpected error")
            self.error = exc

    def _write_loop(self) -> None:
        try:
            while (item := self._writes.get()) is not None:
                self._commit(item)
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
        if self._drainer is not None:
            # What is left in the journal stays there for the next start.
            self._stop_draining.set()
            self._drainer.join(timeout)
            self._drainer = None

    def final_sweep(self) -> int:
        """Re-evaluate time-driven conditions once more and store them (end of a run)."""
        changes = self.processor.sweep()
        touched = self._dirty | {c.instrument_id for c in changes}
        self._dirty = set()
        batch = OutputBatch(changes=changes, snapshots=self.processor.snapshots(touched))
        if self.journal is None:
            self._write(batch)
        else:
            try:
                self._store_or_journal(batch, time.time())
            except JournalError as exc:  # recomputed from the readings at the next start
                log.warning("latest states not stored at stop: %s", exc)
                return 0
        self._publish_alerts(changes)
        return len(changes)
