"""`calstream bench`: end-to-end throughput through a real mosquitto, beside the raw ceiling.

For each message size (100 readings per message, then 1), the same pre-encoded payloads are
published twice by a separate publisher process, at QoS 1, as fast as the broker takes them:

1. *raw*: a subscriber built exactly like the pipeline's (paho, durable session, manual
   acknowledgement) takes every message and acknowledges it at once: the ceiling of
   broker-to-subscriber delivery for this client on this machine;
2. *pipeline*: the full embedded pipeline (decode, admission, step, SQLite commit, then
   acknowledgement).

Rates count readings from the first message received to the last one stored. The pipeline's
own timers say where its time goes. Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from calstream.runtime.pipeline import Pipeline
from calstream.runtime.tuning import tune_garbage_collector
from calstream.settings import Settings
from calstream.wiring import pipeline_for, subscriber_for
from edge_sim.fleetgen import generate_fleet_document
from edge_sim.gateway import GatewayPublisher
from edge_sim.simulator import FleetSimulator
from metrology.fleet import Fleet, load_fleet
from metrology.timebase import SECONDS_PER_DAY
from storage.sqlite_store import SqliteStore

BENCH_AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class BenchCase:
    readings_per_message: int
    readings: int


@dataclass(slots=True)
class CaseResult:
    readings_per_message: int
    readings: int
    messages: int
    raw_readings_per_s: float
    pipeline_readings_per_s: float
    ratio: float
    stored: int
    rejected: int
    us_per_reading: dict[str, float]


def bench_fleet(instruments: int, seed: int = 7) -> Fleet:
    return load_fleet(generate_fleet_document(instruments, seed, BENCH_AS_OF))


def _payload_batches(
    fleet: Fleet, case: BenchCase, seed: int
) -> Iterator[tuple[str, str, str, list]]:  # type: ignore[type-arg]
    """The simulated readings of the case, in messages of ``readings_per_message``."""
    end = BENCH_AS_OF.timestamp()
    simulator = FleetSimulator(
        fleet,
        seed=seed,
        start=end - 365 * SECONDS_PER_DAY,
        end=end,
        batch_size=case.readings_per_message,
        publish_interval_s=SECONDS_PER_DAY,
    )
    left = case.readings
    for tenant, site, gateway, readings in simulator:
        if left <= 0:
            return
        batch = readings[:left]
        left -= len(batch)
        yield tenant, site, gateway, batch


def _publisher_main(
    host: str,
    port: int,
    instruments: int,
    case: BenchCase,
    seed: int,
    ready: multiprocessing.synchronize.Event,
    go: multiprocessing.synchronize.Event,
) -> None:
    """Publisher process: encode everything first, then publish as fast as acknowledged."""
    from metrology.wire import encode, readings_topic

    fleet = bench_fleet(instruments)
    messages = [
        (readings_topic(t, s, g), encode(t, s, g, r), len(r))
        for t, s, g, r in _payload_batches(fleet, case, seed)
    ]
    publisher = GatewayPublisher(client_id=f"calstream-bench-pub-{uuid.uuid4().hex[:6]}")
    publisher.connect(host, port)
    ready.set()
    go.wait()
    for topic, payload, count in messages:
        publisher.publish_payload(topic, payload, count, timeout=None)
    publisher.flush(timeout=600)
    publisher.close()


@contextmanager
def _publisher(
    host: str, port: int, instruments: int, case: BenchCase, seed: int
) -> Iterator[multiprocessing.synchronize.Event]:
    context = multiprocessing.get_context("fork")
    ready, go = context.Event(), context.Event()
    process = context.Process(
        target=_publisher_main, args=(host, port, instruments, case, seed, ready, go), daemon=True
    )
    process.start()
    if not ready.wait(300):
        process.kill()
        raise RuntimeError("the bench publisher did not get ready within 300 s")
    try:
        yield go
    finally:
        process.join(600)
        if process.is_alive():
            process.kill()


def _raw_rate(
    host: str, port: int, instruments: int, case: BenchCase, seed: int
) -> tuple[float, int]:
    subscriber = subscriber_for(
        Settings(), host, port, f"calstream-bench-raw-{uuid.uuid4().hex[:6]}", queue_size=10_000
    )
    expected = case.readings
    with _publisher(host, port, instruments, case, seed) as go:
        go.set()
        received = 0
        first = None
        while received < expected:
            batch = subscriber.get_batch(1_000, timeout=30.0)
            if not batch:
                break
            if first is None:
                first = batch[0].received_at
            # Count readings without decoding: the bench knows how it batched them.
            received += len(batch) * case.readings_per_message
            subscriber.ack(batch)
        elapsed = time.time() - first if first is not None else 0.0
    subscriber.stop()
    return (min(received, expected) / elapsed if elapsed > 0 else 0.0), received


def pipeline_rate(
    host: str, port: int, fleet: Fleet, instruments: int, case: BenchCase, seed: int, work: Path
) -> tuple[float, Pipeline, int]:
    """Readings/s of a pipeline (SQLite store in ``work``) draining ``case`` from the broker;
    also the pipeline (its counters and timings) and the readings it stored."""
    settings = Settings(max_age_days=100_000)
    store = SqliteStore(work / f"bench-{case.readings_per_message}.sqlite")
    store.register_fleet(fleet)
    subscriber = subscriber_for(
        settings, host, port, f"calstream-bench-pipeline-{uuid.uuid4().hex[:6]}", queue_size=10_000
    )
    pipeline = pipeline_for(
        fleet, settings, store, subscriber,
        max_messages_per_batch=max(1, 20_000 // case.readings_per_message),
    )  # fmt: skip
    pipeline.start()
    with _publisher(host, port, instruments, case, seed) as go:
        go.set()
        progress, idle_since = -1, time.monotonic()
        while pipeline.counters.stored + pipeline.counters.rejected < case.readings:
            time.sleep(0.002)
            if pipeline.counters.stored != progress:
                progress, idle_since = pipeline.counters.stored, time.monotonic()
            elif time.monotonic() - idle_since > 30 or pipeline.error is not None:
                break
        finished = time.time()
    pipeline.stop()
    first = pipeline.counters.first_received_at
    elapsed = finished - first if first is not None else 0.0
    subscriber.stop()
    stored = store.reading_count()
    store.close()
    rate = pipeline.counters.received / elapsed if elapsed > 0 else 0.0
    return rate, pipeline, stored


def run_bench(
    broker: tuple[str, int],
    instruments: int = 1_000,
    readings: int = 400_000,
    single_readings: int = 20_000,
    seed: int = 1,
    work: Path | None = None,
) -> list[CaseResult]:
    host, port = broker
    tune_garbage_collector()
    fleet = bench_fleet(instruments)
    results = []
    with tempfile.TemporaryDirectory(prefix="calstream-bench-") as scratch:
        folder = work or Path(scratch)
        for case in (BenchCase(100, readings), BenchCase(1, single_readings)):
            raw, _ = _raw_rate(host, port, instruments, case, seed)
            rate, pipeline, stored = pipeline_rate(
                host, port, fleet, instruments, case, seed, folder
            )
            counters = pipeline.counters
            per = max(counters.received, 1)
            results.append(
                CaseResult(
                    readings_per_message=case.readings_per_message,
                    readings=counters.received,
                    messages=counters.messages,
                    raw_readings_per_s=raw,
                    pipeline_readings_per_s=rate,
                    ratio=rate / raw if raw else 0.0,
                    stored=stored,
                    rejected=counters.rejected,
                    us_per_reading={
                        name: seconds / per * 1e6 for name, seconds in counters.timings().items()
                    },
                )
            )
    return results


def as_document(results: list[CaseResult]) -> dict[str, object]:
    return {
        "cases": [asdict(r) for r in results],
        "cpu_count": os.cpu_count(),
        "target_readings_per_s": 100_000,
    }
