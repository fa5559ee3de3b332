"""`calstream soak`: the pipeline at about half its measured capacity for minutes, watched.

1. *Capacity*: a short `calstream bench` run (the same publisher process and pipeline, 100
   readings per message) measures the readings/s the pipeline sustains on this machine.
2. *Soak*: a publisher process sends live readings through a real mosquitto at half that rate
   (paced, 100 readings per message) into the full pipeline (journal included). Every reading is
   stamped with its publish time as its timestamp, so publish-to-stored latency is measured per
   reading when its batch's store write returns (a journalled batch counts when it is replayed).
3. Every ``report_every_s``: resident memory of the pipeline's process, readings published and
   stored, latency p50/p99 over the interval, journal depth. At the end, after the publisher
   stopped and everything published was stored: the summary (``published == stored`` expected).

Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.sharedctypes
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calstream.evaluation.throughput import BENCH_AS_OF, BenchCase, bench_fleet, pipeline_rate
from calstream.runtime.journal import Journal
from calstream.runtime.tuning import tune_garbage_collector
from calstream.servers.mosquitto import LocalMosquitto
from calstream.settings import Settings, broker_address
from calstream.wiring import pipeline_for, subscriber_for
from metrology.batch import OutputBatch
from metrology.reading import Reading
from metrology.timebase import SECONDS_PER_DAY
from storage.batch import WriteResult
from storage.sqlite_store import SqliteStore

READINGS_PER_MESSAGE = 100
_EDGES = np.logspace(-4, 3, 1401)
"""Latency histogram bin edges, 0.1 ms to 1000 s, 200 bins per decade (1.2 % wide)."""


@dataclass(frozen=True, slots=True)
class SoakSample:
    elapsed_s: float
    rss_mb: float
    published: int
    stored: int
    p50_ms: float
    p99_ms: float
    journal_batches: int
    journal_readings: int
    journal_bytes: int


@dataclass(slots=True)
class SoakResult:
    minutes: float
    instruments: int
    capacity_readings_per_s: float
    target_readings_per_s: float
    achieved_readings_per_s: float
    published: int
    stored: int
    duplicates: int
    rejected: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    rss_mb_first: float
    rss_mb_max: float
    rss_mb_last: float
    samples: list[SoakSample] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def rss_mb() -> float:
    """Resident memory of this process (the pipeline's), MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class LatencyHistogram:
    """Counts of latencies in log-spaced bins; percentiles read from the cumulative counts."""

    def __init__(self) -> None:
        self.counts = np.zeros(len(_EDGES) + 1, dtype=np.int64)
        self.largest = 0.0

    def add(self, seconds: np.ndarray) -> None:
        if len(seconds):
            self.counts += np.bincount(np.searchsorted(_EDGES, seconds), minlength=len(self.counts))
            self.largest = max(self.largest, float(seconds.max()))

    def percentile_ms(self, q: float) -> float:
        total = int(self.counts.sum())
        if total == 0:
            return float("nan")
        index = int(np.searchsorted(np.cumsum(self.counts), q / 100 * total))
        # The upper edge of the bin holding the percentile (an upper bound 1.2 % wide).
        return float(_EDGES[min(index, len(_EDGES) - 1)] * 1000)


class TimedStore:
    """The store, with the publish-to-stored latency of every reading it writes recorded."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self.interval = LatencyHistogram()
        self.total = LatencyHistogram()

    def write(self, batch: OutputBatch) -> WriteResult:
        result = self._store.write(batch)
        now = time.time()
        if batch.readings:
            published = np.fromiter((r.ts for r, _ in batch.readings), float, len(batch.readings))
            latency = np.maximum(now - published, 0.0)
            with self._lock:
                self.interval.add(latency)
                self.total.add(latency)
        return result

    def take_interval(self) -> LatencyHistogram:
        with self._lock:
            interval, self.interval = self.interval, LatencyHistogram()
        return interval

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _live_batches(instruments: int, seed: int) -> Iterator[tuple[str, str, str, list[Reading]]]:
    """Simulated readings without end: 60-day windows one after the other, sequence numbers
    continuing per gateway, so none is taken for a re-delivery."""
    from edge_sim.simulator import FleetSimulator

    fleet = bench_fleet(instruments)
    start = BENCH_AS_OF.timestamp() - 60 * SECONDS_PER_DAY
    offsets: dict[tuple[str, str, str], int] = {}
    window = 0
    while True:
        last: dict[tuple[str, str, str], int] = {}
        simulator = FleetSimulator(
            fleet,
            seed=seed + window,
            start=start,
            end=start + 60 * SECONDS_PER_DAY,
            batch_size=READINGS_PER_MESSAGE,
            publish_interval_s=SECONDS_PER_DAY,
        )
        for tenant, site, gateway, readings in simulator:
            key = (tenant, site, gateway)
            offset = offsets.get(key, 0)
            if offset:
                readings = [r._replace(seq=r.seq + offset) for r in readings]
            last[key] = readings[-1].seq
            yield tenant, site, gateway, readings
        offsets.update(last)
        window += 1


def _publisher_main(
    host: str,
    port: int,
    instruments: int,
    rate: float,
    seed: int,
    ready: Any,
    stop: Any,
    published: Any,
) -> None:
    """Publisher process: live readings stamped with their publish time, paced at ``rate``."""
    from edge_sim.gateway import GatewayPublisher
    from metrology.wire import encode, readings_topic

    batches = _live_batches(instruments, seed)
    publisher = GatewayPublisher(client_id=f"calstream-soak-pub-{uuid.uuid4().hex[:6]}")
    publisher.connect(host, port)
    ready.set()
    interval = READINGS_PER_MESSAGE / rate
    due = time.monotonic()
    while not stop.is_set():
        tenant, site, gateway, readings = next(batches)
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        now = time.time()
        stamped = [r._replace(ts=now + i * 1e-6) for i, r in enumerate(readings)]
        publisher.publish_payload(
            readings_topic(tenant, site, gateway),
            encode(tenant, site, gateway, stamped),
            len(stamped),
            timeout=None,
        )
        due += interval
        published.value = publisher.readings_acked
    publisher.flush(timeout=120)
    published.value = publisher.readings_acked
    publisher.close()


def measure_capacity(
    host: str, port: int, instruments: int, readings: int, work: Path, seed: int = 1
) -> float:
    """Readings/s the pipeline sustains here (a `calstream bench` case, 100 per message)."""
    fleet = bench_fleet(instruments)
    rate, _, _ = pipeline_rate(
        host, port, fleet, instruments, BenchCase(READINGS_PER_MESSAGE, readings), seed, work
    )
    return rate


def run_soak(
    broker: tuple[str, int],
    minutes: float,
    *,
    instruments: int = 1_000,
    capacity_readings: int = 200_000,
    load: float = 0.5,
    report_every_s: float = 10.0,
    on_sample: Callable[[SoakSample], None] | None = None,
    work: Path | None = None,
    seed: int = 1,
) -> SoakResult:
    """Measure capacity, then soak at ``load`` times it for ``minutes``; returns the figures."""
    host, port = broker
    tune_garbage_collector()
    with tempfile.TemporaryDirectory(prefix="calstream-soak-") as scratch:
        folder = work or Path(scratch)
        capacity = measure_capacity(host, port, instruments, capacity_readings, folder, seed)
        target = max(capacity * load, float(READINGS_PER_MESSAGE))
        fleet = bench_fleet(instruments)
        settings = Settings()
        store = SqliteStore(folder / "soak.sqlite")
        store.register_fleet(fleet)
        timed = TimedStore(store)
        journal = Journal(folder / "journal", settings.journal_max_bytes)
        # The subscriber and the pipeline as `calstream run` builds them (bounded queue of 2,000).
        subscriber = subscriber_for(settings, host, port, f"calstream-soak-{uuid.uuid4().hex[:6]}")
        pipeline = pipeline_for(
            fleet, settings, timed, subscriber, journal=journal,  # type: ignore[arg-type]
        )  # fmt: skip
        pipeline.start()
        context = multiprocessing.get_context("fork")
        ready, stop = context.Event(), context.Event()
        published = context.Value("q", 0)
        process = context.Process(
            target=_publisher_main,
            args=(host, port, instruments, target, seed, ready, stop, published),
            daemon=True,
        )
        process.start()
        if not ready.wait(120):
            process.kill()
            raise RuntimeError("the soak publisher did not get ready within 120 s")
        samples: list[SoakSample] = []
        started = time.monotonic()
        first_stored = pipeline.counters.stored
        duration = minutes * 60.0

        def sample() -> SoakSample:
            interval = timed.take_interval()
            depth = pipeline.journal_depth
            taken = SoakSample(
                elapsed_s=round(time.monotonic() - started, 1),
                rss_mb=round(rss_mb(), 1),
                published=int(published.value),
                stored=pipeline.counters.stored - first_stored,
                p50_ms=interval.percentile_ms(50),
                p99_ms=interval.percentile_ms(99),
                journal_batches=depth.batches,
                journal_readings=depth.readings,
                journal_bytes=depth.bytes,
            )
            samples.append(taken)
            if on_sample is not None:
                on_sample(taken)
            return taken

        while (left := duration - (time.monotonic() - started)) > 0:
            time.sleep(min(report_every_s, left))
            if pipeline.error is not None:
                raise RuntimeError("the pipeline stopped") from pipeline.error
            sample()
        stop.set()
        process.join(180)
        if process.is_alive():
            process.kill()
        publish_s = time.monotonic() - started
        total_published = int(published.value)
        deadline = time.monotonic() + 120
        while (
            pipeline.counters.stored - first_stored < total_published
            and time.monotonic() < deadline
            and pipeline.error is None
        ):
            time.sleep(0.05)
        pipeline.stop()
        subscriber.stop()
        last = sample()
        counters = pipeline.counters
        stored = store.reading_count()
        journal.close()
        store.close()
    rss = [s.rss_mb for s in samples]
    return SoakResult(
        minutes=minutes,
        instruments=instruments,
        capacity_readings_per_s=round(capacity, 1),
        target_readings_per_s=round(target, 1),
        achieved_readings_per_s=round(total_published / publish_s, 1) if publish_s else 0.0,
        published=total_published,
        stored=stored,
        duplicates=counters.duplicates_in_store,
        rejected=counters.rejected,
        p50_ms=timed.total.percentile_ms(50),
        p99_ms=timed.total.percentile_ms(99),
        max_ms=round(timed.total.largest * 1000, 1),
        rss_mb_first=rss[0] if rss else last.rss_mb,
        rss_mb_max=max(rss) if rss else last.rss_mb,
        rss_mb_last=last.rss_mb,
        samples=samples,
    )


def soak_command(
    minutes: float,
    instruments: int,
    broker: str | None,
    json_output: bool,
    *,
    load: float = 0.5,
    capacity_readings: int = 200_000,
) -> SoakResult:
    """`calstream soak`: start a local mosquitto (deploy tuning) unless ``broker`` is given,
    print a line every ~10 s and a summary (as JSON on the last line with ``json_output``)."""
    out = sys.stderr if json_output else sys.stdout

    def show(s: SoakSample) -> None:
        print(
            f"{s.elapsed_s:7.1f} s  rss {s.rss_mb:7.1f} MiB  published {s.published:>10,}  "
            f"stored {s.stored:>10,}  latency p50 {s.p50_ms:8.1f} ms  p99 {s.p99_ms:8.1f} ms  "
            f"journal {s.journal_batches} batches / {s.journal_readings:,} readings",
            file=out,
            flush=True,
        )

    with tempfile.TemporaryDirectory(prefix="calstream-soak-broker-") as folder:
        local = None
        if broker:
            address = broker_address(broker)
        else:
            local = LocalMosquitto(Path(folder))
            local.start()
            address = (local.host, local.port)
        try:
            print(
                f"measuring capacity, then soaking {minutes:g} min at {load:.0%} of it "
                f"through mosquitto {address[0]}:{address[1]}",
                file=out,
                flush=True,
            )
            result = run_soak(
                address,
                minutes,
                instruments=instruments,
                capacity_readings=capacity_readings,
                load=load,
                on_sample=show,
            )
        finally:
            if local is not None:
                local.kill()
    print(
        f"capacity {result.capacity_readings_per_s:,.0f} readings/s; soaked at "
        f"{result.achieved_readings_per_s:,.0f} readings/s (target "
        f"{result.target_readings_per_s:,.0f}) for {minutes:g} min: published "
        f"{result.published:,}, stored {result.stored:,}, duplicates {result.duplicates}, "
        f"rejected {result.rejected}; latency p50 {result.p50_ms:.1f} ms, p99 "
        f"{result.p99_ms:.1f} ms, max {result.max_ms:.1f} ms; rss {result.rss_mb_first:.0f} -> "
        f"{result.rss_mb_last:.0f} MiB (max {result.rss_mb_max:.0f})",
        file=out,
        flush=True,
    )
    if json_output:
        sys.stdout.write(json.dumps(result.as_dict()) + "\n")
    return result
