"""`calstream demo`: a simulated fleet streaming through the whole platform in one process.

Embedded broker (amqtt) unless a broker URL is given -> edge_sim gateways publishing QoS 1 ->
the pipeline (decode, admit, step) -> the store (SQLite by default, or the InfluxDB ``--store``
names). Simulated time runs faster than the wall clock: ``--sim-days`` of instrument life pass
in ``--duration`` seconds, so months of drift are seen in a minute. At the end, detection is
scored against the simulator's ground truth.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from calstream.runtime.observability import ObservabilityServer, serve
from calstream.runtime.pipeline import Pipeline
from calstream.servers.embedded import EmbeddedBroker
from calstream.settings import Settings, broker_address, example_fleet_path
from calstream.wiring import pipeline_for, policy_for, store_for, subscriber_for
from edge_sim.fleetgen import generate_fleet_document
from edge_sim.gateway import GatewayPublisher
from edge_sim.scoring import DetectionScore, score_detection
from edge_sim.simulator import FleetSimulator
from edge_sim.truth import GroundTruth, write_truth
from ingest.importers.fleet_file import read_fleet
from metrology.fleet import Fleet, load_fleet
from metrology.timebase import SECONDS_PER_DAY
from storage.contract import Store
from storage.select import SQLITE_PREFIX, describe_store, sqlite_path, store_kind
from stream_processors.runner import FleetProcessor

log = logging.getLogger(__name__)

MAX_LAG_READINGS = 20_000
"""Readings published but not yet taken by the pipeline before the simulated gateways wait."""
EXAMPLE_FLEET_SEED = 7
"""The seed the shipped example fleet was generated with (see its header)."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    duration_s: float = 30.0
    instruments: int = 60
    seed: int = 1
    sim_days: float = 100.0
    db: Path | None = None
    store: str | None = None
    """A store URL (storage.select); overrides ``db`` and the settings' store."""
    broker: str | None = None
    fleet: Path | None = None
    batch_size: int = 250


@dataclass(slots=True)
class DemoProgress:
    """What the live view shows; refreshed by the demo while it runs."""

    simulated_fraction: float = 0.0
    simulated_at: float | None = None
    published: int = 0
    elapsed_s: float = 0.0
    phase: str = "starting"


@dataclass(slots=True)
class DemoResult:
    published: int
    messages: int
    stored: int
    rejected: int
    instruments_by_status: dict[str, int]
    alerts: int
    detection: DetectionScore
    duration_s: float
    simulated_days: float
    instruments: int
    db: str
    truth: str
    broker: str
    rejected_by_reason: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "published": self.published,
            "messages": self.messages,
            "stored": self.stored,
            "rejected": self.rejected,
            "instruments_by_status": self.instruments_by_status,
            "alerts": self.alerts,
            "detection": self.detection.as_dict(),
            "duration_s": round(self.duration_s, 2),
            "simulated_days": self.simulated_days,
            "readings_per_s": round(self.stored / self.duration_s, 1) if self.duration_s else None,
            "instruments": self.instruments,
            "rejected_by_reason": self.rejected_by_reason,
            "db": self.db,
            "truth": self.truth,
            "broker": self.broker,
        }


def demo_fleet(options: DemoOptions) -> Fleet:
    """The fleet to simulate: a given file, the shipped example, or one generated of N."""
    if options.fleet is not None:
        fleet = read_fleet(options.fleet)
        ids = list(fleet.instruments)[: options.instruments]
        return fleet if len(ids) == len(fleet.instruments) else fleet.subset(ids)
    example = read_fleet(example_fleet_path())
    if options.instruments == len(example.instruments):
        return example
    as_of = datetime.fromtimestamp(example.as_of or time.time(), tz=UTC)
    return load_fleet(generate_fleet_document(options.instruments, EXAMPLE_FLEET_SEED, as_of))


def fresh_store_path(path: Path) -> Path:
    """Make ``path`` ready for a new demo store, refusing to replace a file that is not one."""
    if path.exists():
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
                conn.execute("SELECT 1 FROM schema_version").fetchone()
        except sqlite3.DatabaseError as exc:
            raise FileExistsError(
                f"{path} exists and is not a calstream store; choose another --db"
            ) from exc
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


class Demo:
    """One demo run. ``run()`` blocks until the simulated window is published and stored."""

    def __init__(self, options: DemoOptions, settings: Settings | None = None) -> None:
        self.options = options
        self.settings = settings or Settings()
        self.progress = DemoProgress()
        self.fleet = demo_fleet(options)
        end = self.fleet.as_of or float(int(time.time() // SECONDS_PER_DAY) * SECONDS_PER_DAY)
        self.start_at = end - options.sim_days * SECONDS_PER_DAY
        self.end_at = end
        # Gateways publish what they collected every publish interval (simulated time); scaled
        # so that each publishes about five times a wall-clock second, in batches of up to
        # ``batch_size`` readings. The offline rule allows for that delivery delay.
        speedup = options.sim_days * SECONDS_PER_DAY / max(options.duration_s, 0.1)
        self.publish_interval_s = min(max(speedup * 0.2, 3_600.0), SECONDS_PER_DAY)
        store_url = options.store or (
            f"{SQLITE_PREFIX}{options.db}" if options.db else self.settings.store_url
        )
        if store_kind(store_url) == "sqlite":
            # A demo starts an embedded store afresh; a server's database is written into as it is.
            self.db_path: Path | None = fresh_store_path(sqlite_path(store_url))
            self.store_url = f"{SQLITE_PREFIX}{self.db_path}"
            self.truth_path = self.db_path.with_suffix(".truth.json")
        else:
            self.db_path = None
            self.store_url = store_url
            self.settings.work_dir.mkdir(parents=True, exist_ok=True)
            self.truth_path = self.settings.work_dir / "demo.truth.json"
        self.store: Store | None = None
        self.processor: FleetProcessor | None = None
        self.pipeline: Pipeline | None = None
        self.truth: GroundTruth | None = None
        self.endpoints: ObservabilityServer | None = None

    def run(
        self, on_tick: Callable[[Demo], None] | None = None, tick_s: float = 0.25
    ) -> DemoResult:
        broker: EmbeddedBroker | None = None
        if self.options.broker:
            host, port = broker_address(self.options.broker)
            broker_url = self.options.broker
        else:
            broker = EmbeddedBroker()
            broker.start()
            host, port, broker_url = broker.host, broker.port, f"{broker.url} (embedded amqtt)"
        try:
            return self._run(host, port, broker_url, on_tick, tick_s)
        finally:
            if broker is not None:
                broker.stop()

    def _run(
        self,
        host: str,
        port: int,
        broker_url: str,
        on_tick: Callable[[Demo], None] | None,
        tick_s: float,
    ) -> DemoResult:
        options = self.options
        self.store = store = store_for(self.settings, self.store_url)
        store.register_fleet(self.fleet)
        policy = replace(policy_for(self.settings), offline_grace_s=2 * self.publish_interval_s)
        self.processor = FleetProcessor(self.fleet, policy)
        run_id = uuid.uuid4().hex[:8]
        subscriber = subscriber_for(self.settings, host, port, f"calstream-demo-{run_id}")
        self.pipeline = pipeline = pipeline_for(
            self.fleet, self.settings, store, subscriber, processor=self.processor
        )
        pipeline.start()
        settings = self.settings
        self.endpoints = (
            serve(pipeline, settings.metrics_host, settings.metrics_port)
            if settings.metrics_port
            else None
        )
        simulator = FleetSimulator(
            self.fleet,
            seed=options.seed,
            start=self.start_at,
            end=self.end_at,
            batch_size=options.batch_size,
            publish_interval_s=self.publish_interval_s,
        )
        self.truth = simulator.truth
        publisher = GatewayPublisher(client_id=f"calstream-demo-gateways-{run_id}")
        publisher.connect(host, port)
        feeder = threading.Thread(
            target=self._feed, args=(simulator, publisher), name="edge-sim", daemon=True
        )
        started = time.monotonic()
        self._started = started
        feeder.start()
        try:
            while feeder.is_alive():
                feeder.join(tick_s)
                self._update_progress(publisher, started)
                if pipeline.error is not None:
                    raise RuntimeError("the pipeline stopped") from pipeline.error
                if on_tick:
                    on_tick(self)
            publisher.flush(timeout=60.0)
            self.progress.phase = "draining"
            published = publisher.readings_acked
            deadline = time.monotonic() + 120.0
            while pipeline.counters.received < published and time.monotonic() < deadline:
                time.sleep(tick_s / 5)
                self._update_progress(publisher, started)
                if on_tick:
                    on_tick(self)
        finally:
            if self.endpoints is not None:
                self.endpoints.stop()
            pipeline.stop()
            publisher.close()
            if pipeline.error is None:
                pipeline.final_sweep()  # stores and publishes the last time-driven changes
            subscriber.stop()
        elapsed = time.monotonic() - started
        self.progress.phase = "done"
        self._update_progress(publisher, started)
        if on_tick:
            on_tick(self)
        write_truth(self.truth_path, simulator.truth)
        first_flagged = {i: s.first_drift_at for i, s in self.processor.states.items()}
        result = DemoResult(
            published=publisher.readings_acked,
            messages=publisher.messages_acked,
            stored=store.reading_count(),
            rejected=store.dead_letter_count(),
            instruments_by_status=store.counts_by_status(),
            alerts=store.alert_count(),
            detection=score_detection(simulator.truth, first_flagged),
            duration_s=elapsed,
            simulated_days=options.sim_days,
            instruments=len(self.fleet.instruments),
            db=str(self.db_path) if self.db_path is not None else describe_store(self.store_url),
            truth=str(self.truth_path),
            broker=broker_url,
            rejected_by_reason=store.dead_letters_by_reason(),
        )
        store.close()
        return result

    def _feed(self, simulator: FleetSimulator, publisher: GatewayPublisher) -> None:
        """Publish the simulated window, pacing simulated time against the wall clock.

        Closed loop: while the pipeline is more than ``MAX_LAG_READINGS`` behind, the gateways
        wait (a broker holds what was published for a slow subscriber, but amqtt abandons a
        delivery that is not acknowledged within 5 s, so the demo never lets a backlog build).
        """
        span = self.end_at - self.start_at
        duration = max(self.options.duration_s, 0.1)
        assert self.pipeline is not None
        counters = self.pipeline.counters
        self.progress.phase = "streaming"
        while True:
            elapsed = time.monotonic() - self._started
            target = self.start_at + span * min(elapsed / duration, 1.0)
            for tenant, site, gateway, readings in simulator.batches_until(target):
                while publisher.readings_sent - counters.received > MAX_LAG_READINGS:
                    time.sleep(0.005)
                publisher.publish_batch(tenant, site, gateway, readings)
                self.progress.simulated_at = readings[-1].ts
            self.progress.simulated_at = target
            if target >= self.end_at:
                return
            time.sleep(0.02)

    def _update_progress(self, publisher: GatewayPublisher, started: float) -> None:
        span = self.end_at - self.start_at
        at = self.progress.simulated_at
        self.progress.simulated_fraction = 0.0 if at is None else (at - self.start_at) / span
        self.progress.published = publisher.readings_acked
        self.progress.elapsed_s = time.monotonic() - started
