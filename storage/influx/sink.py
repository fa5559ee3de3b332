"""``InfluxSink``: the series of pipeline batches into InfluxDB (or VictoriaMetrics).

``write_series(batch)`` serialises the batch chunk by chunk (``chunk_lines`` lines each, gzipped)
and hands every chunk to ``senders`` threads that post it and retry it; it returns the number
of points once the server accepted every chunk (HTTP 204), and raises ``StorageError`` when one
chunk is not accepted within the retry budget (the chunks of the call not yet sent are then
dropped; the pipeline writes the whole batch again, and points that did land overwrite
themselves).

Back-pressure: at most ``in_flight`` chunks are serialised and not yet accepted; serialising
the next one waits for a slot, so a slow or absent server stops the caller instead of growing a
buffer. Calls are serialised (one batch at a time): the ``fleet_status`` counts of a batch
depend on those before it.

With ``per_tenant`` (store URL option, v1), a batch is split by tenant and each part written to
its tenant's database (:meth:`~storage.influx.target.InfluxTarget.database_of`), chunked as
above; the batch is accepted once every part is.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import httpx

from metrology.assessment import Assessment, HealthSnapshot, StatusChange
from metrology.batch import OutputBatch
from metrology.fleet import Fleet
from metrology.reading import Reading
from metrology.wire import DeadLetter
from storage.errors import StorageError
from storage.influx.fleet_status import FleetStatusCounts
from storage.influx.points import ReadingSerialiser, alert_line, dead_letter_lines, health_lines
from storage.influx.reads import InfluxQLReader, VictoriaMetricsReader
from storage.influx.retry import Retryable, call_with_retries
from storage.influx.target import InfluxTarget, parse_store_url
from storage.influx.transport import ChunkWriter, chunk_writer, request_body

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Part:
    """The points of one batch that go to one database."""

    readings: list[tuple[Reading, Assessment]] = field(default_factory=list)
    snapshots: list[HealthSnapshot] = field(default_factory=list)
    changes: list[StatusChange] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    fleet_status: list[str] = field(default_factory=list)


class _Cancelled(Exception):
    """An earlier chunk of the same call failed: this one is not sent."""


class _Call:
    """One ``write_series`` call: the first failure of any of its chunks."""

    __slots__ = ("failed",)

    def __init__(self) -> None:
        self.failed: StorageError | None = None


class InfluxSink:
    """A :class:`storage.contract.SeriesSink` writing line protocol to InfluxDB.

    Build it with :meth:`from_url`; call :meth:`register_fleet` before the first write (the
    ``measurand`` tag of readings comes from the fleet).
    """

    def __init__(
        self,
        target: InfluxTarget,
        fleet: Fleet | None = None,
        writer: ChunkWriter | None = None,
    ) -> None:
        self.target = target
        policy = target.policy
        self._writer = writer or chunk_writer(target)
        self._reader: InfluxQLReader | VictoriaMetricsReader = (
            VictoriaMetricsReader(target)
            if target.reads == "victoriametrics"
            else InfluxQLReader(target)
        )
        self._measurands: dict[str, str] = {}
        self._readings = ReadingSerialiser(self._measurands.get)
        self._counts = FleetStatusCounts()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(policy.in_flight)
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(policy.senders, thread_name_prefix="influx-sender")
        self._closed = False
        if fleet is not None:
            self.register_fleet(fleet)

    @classmethod
    def from_url(cls, url: str, fleet: Fleet | None = None, **policy: Any) -> InfluxSink:
        """A sink for an ``influxdb://`` / ``influxdb2://`` store URL (docs/influxdb.md);
        ``policy`` overrides the URL's write options (``retry_s=5``, ...)."""
        target = parse_store_url(url)
        if policy:
            target = target.with_policy(**policy)
        return cls(target, fleet)

    # --- state the series depend on ---

    def register_fleet(self, fleet: Fleet) -> None:
        """Take the measurand of every instrument (the ``measurand`` tag of its readings)."""
        with self._lock:
            self._measurands.clear()
            self._measurands.update({i: spec.measurand for i, spec in fleet.instruments.items()})
            self._readings.forget_heads()

    def seed_statuses(self, snapshots: Iterable[HealthSnapshot]) -> None:
        """Start the ``fleet_status`` counts from the latest states a registry holds."""
        with self._lock:
            self._counts.seed(snapshots)

    @property
    def pending_chunks(self) -> int:
        """Chunks serialised and not yet accepted (at most ``in_flight``)."""
        return self._pending

    # --- writing ---

    def write_series(self, batch: OutputBatch) -> int:
        """Write the batch's points; return how many, once the server accepted all of them."""
        if self._closed:
            raise StorageError("the InfluxDB sink is closed")
        with self._lock:
            self._seed_from_server()
            plan = self._counts.plan(batch.snapshots)
            points = self._send(self._chunks(batch, plan.lines))
            self._counts.commit(plan)
            return points

    def _parts(self, batch: OutputBatch, fleet_status: list[tuple[str, str]]) -> dict[str, _Part]:
        """The batch by the database its points go to: one part, unless ``per_tenant``."""
        target = self.target
        if not target.per_tenant:
            lines = [line for _, line in fleet_status]
            whole = _Part(batch.readings, batch.snapshots, batch.changes, batch.dead_letters, lines)
            return {target.database: whole}
        parts: dict[str, _Part] = {}

        def part(tenant: str | None) -> _Part:
            return parts.setdefault(target.database_of(tenant), _Part())

        for item in batch.readings:
            part(item[0].tenant).readings.append(item)
        for snapshot in batch.snapshots:
            part(snapshot.tenant).snapshots.append(snapshot)
        for change in batch.changes:
            part(change.tenant).changes.append(change)
        for dead in batch.dead_letters:
            part(dead.tenant).dead_letters.append(dead)
        for tenant, line in fleet_status:
            part(tenant).fleet_status.append(line)
        return parts

    def _chunks(
        self, batch: OutputBatch, fleet_status: list[tuple[str, str]]
    ) -> Iterator[tuple[str, Sequence[str]]]:
        for database, part in self._parts(batch, fleet_status).items():
            for chunk in self._part_chunks(part):
                yield database, chunk

    def _part_chunks(self, batch: _Part) -> Iterator[Sequence[str]]:
        size = self.target.policy.chunk_lines
        readings = batch.readings
        lines: list[str] = []
        for start in range(0, len(readings), size):
            lines.extend(self._readings.lines(readings[start : start + size]))
            if len(lines) >= size:
                yield lines[:size]
                lines = lines[size:]
        lines.extend(health_lines(batch.snapshots))
        for c in batch.changes:
            text = alert_line(c)
            if text is not None:
                lines.append(text)
        lines.extend(dead_letter_lines(batch.dead_letters))
        lines.extend(batch.fleet_status)
        for start in range(0, len(lines), size):
            yield lines[start : start + size]

    def _send(self, chunks: Iterable[tuple[str, Sequence[str]]]) -> int:
        call = _Call()
        futures: list[Future[None]] = []
        points = 0
        try:
            for database, chunk in chunks:  # serialised lazily: the next while others are sent
                if call.failed is not None:
                    break
                # Back-pressure: wait for a slot; a failing chunk releases its slot, so this
                # returns and the loop stops.
                self._slots.acquire()
                with self._pending_lock:
                    self._pending += 1
                try:
                    data = request_body(chunk, self.target.policy.gzip)
                    futures.append(
                        self._pool.submit(self._send_chunk, call, database, data, len(chunk))
                    )
                except BaseException:
                    self._release()
                    raise
                points += len(chunk)
        finally:
            # Also when serialising raised: nothing of this call stays in flight after it.
            wait(futures)
        if call.failed is not None:
            raise call.failed
        return points

    def _release(self) -> None:
        with self._pending_lock:
            self._pending -= 1
        self._slots.release()

    def _send_chunk(self, call: _Call, database: str, data: bytes, lines: int) -> None:
        def attempt() -> None:
            if call.failed is not None:
                raise _Cancelled
            self._writer.send(data, database)

        try:
            call_with_retries(attempt, self.target.policy.retry_s)
        except _Cancelled:
            pass
        except Retryable as exc:
            call.failed = call.failed or StorageError(
                f"InfluxDB at {self.target.redacted_url} did not accept {lines} lines "
                f"within the retry budget ({self.target.policy.retry_s:g} s, retry_s in the store "
                f"URL): {exc}; check that the server is up and reachable"
            )
        except StorageError as exc:
            call.failed = call.failed or exc
        except Exception as exc:  # a defect: reported to the caller, not lost in the thread
            call.failed = call.failed or StorageError(f"writing to InfluxDB failed: {exc!r}")
            call.failed.__cause__ = exc
        finally:
            self._release()

    def _seed_from_server(self) -> None:
        """On the first write: the latest status of every instrument, from ``health``."""
        if self._counts.seeded:
            return
        try:
            latest = self._reader.latest_statuses()
        except StorageError as exc:
            if isinstance(exc.__cause__, httpx.TransportError):
                raise  # the server is away: the write could not succeed either
            log.warning(
                "fleet_status counts start empty: cannot read the latest statuses back (%s)", exc
            )
            latest = []
        self._counts.seed_statuses(latest)

    # --- reading ---

    def reading_count(self) -> int:
        """Readings stored, each identity (instrument, time) once, read back from the server."""
        return self._reader.reading_count()

    def query(self, influxql: str, database: str | None = None) -> list[dict[str, Any]]:
        """InfluxQL against ``database`` (the target's by default): the first statement's
        ``series``."""
        if not isinstance(self._reader, InfluxQLReader):
            raise StorageError("VictoriaMetrics speaks no InfluxQL (reads=victoriametrics)")
        return self._reader.query(influxql, database)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=True)
        self._writer.close()
        self._reader.close()

    def __enter__(self) -> InfluxSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
