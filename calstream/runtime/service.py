"""`calstream run`: the pipeline as a long-running service against a broker.

Durable session under a fixed client id, fleet registered in the store at start, statistics in
the log every ``report_every_s``, and a clean stop on SIGTERM or SIGINT: the batch in hand is
written and acknowledged, latest states are stored, and the broker keeps everything not yet
acknowledged for the next start.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType

from calstream.runtime.journal import Journal
from calstream.runtime.observability import serve
from calstream.runtime.pipeline import Pipeline
from calstream.runtime.tuning import tune_garbage_collector
from calstream.servers.embedded import EmbeddedBroker
from calstream.settings import Settings, broker_address
from calstream.wiring import pipeline_for, read_fleet, store_for, subscriber_for
from storage.select import describe_store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServiceReport:
    received: int
    stored: int
    rejected: int
    alerts: int
    uptime_s: float


class Service:
    """The embedded pipeline, started and stopped as a service."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.fleet = read_fleet(settings.fleet_path)
        self.store = store_for(settings)
        self.store.register_fleet(self.fleet)
        self._embedded: EmbeddedBroker | None = None
        self._stop = threading.Event()
        self.pipeline: Pipeline | None = None

    def _broker(self) -> tuple[str, int]:
        if self.settings.broker:
            return broker_address(self.settings.broker)
        self._embedded = EmbeddedBroker(port=self.settings.embedded_broker_port)
        self._embedded.start()
        log.warning("no CALSTREAM_BROKER set: running an embedded broker on %s", self._embedded.url)
        return self._embedded.host, self._embedded.port

    def run(self, report_every_s: float = 10.0, install_signals: bool = True) -> ServiceReport:
        """Run until SIGTERM/SIGINT (or :meth:`request_stop`); returns the final counts."""
        if install_signals:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        host, port = self._broker()
        settings = self.settings
        subscriber = subscriber_for(settings, host, port, settings.client_id)
        journal = (
            Journal(settings.journal_path, settings.journal_max_bytes)
            if settings.journal_max_bytes
            else None
        )
        self.pipeline = pipeline = pipeline_for(
            self.fleet, settings, self.store, subscriber, journal=journal
        )
        if journal is not None and not journal.empty:
            # What an earlier run journalled goes to the store before anything newer.
            depth = journal.depth
            log.warning(
                "journal holds %d batches (%d readings) from an earlier run: replaying first",
                depth.batches,
                depth.readings,
            )
            pipeline.drain_journal()
        tune_garbage_collector()
        started = time.monotonic()
        pipeline.start()
        endpoints = (
            serve(pipeline, settings.metrics_host, settings.metrics_port)
            if settings.metrics_port
            else None
        )
        if endpoints is not None:
            log.warning("metrics and health on %s/metrics, /healthz, /readyz", endpoints.url)
        log.warning(
            "calstream running: %d instruments, broker %s:%d, store %s",
            len(self.fleet.instruments),
            host,
            port,
            describe_store(settings.store_url),
        )
        try:
            while not self._stop.wait(report_every_s):
                if pipeline.error is not None:
                    raise RuntimeError("the pipeline stopped") from pipeline.error
                counters = pipeline.counters
                depth = pipeline.journal_depth
                log.warning(
                    "received %d, stored %d, rejected %d, alerts %d, backlog %d messages, "
                    "journal %d batches / %d readings / %d bytes%s",
                    counters.received,
                    counters.stored,
                    counters.rejected,
                    counters.alerts,
                    subscriber.backlog,
                    depth.batches,
                    depth.readings,
                    depth.bytes,
                    " (full: back-pressure)" if pipeline.journal_is_full else "",
                )
        finally:
            if endpoints is not None:
                endpoints.stop()
            pipeline.stop()
            if pipeline.error is None:
                pipeline.final_sweep()
            subscriber.stop()
            if journal is not None:
                journal.close()
            self.store.close()
            if self._embedded is not None:
                self._embedded.stop()
        counters = pipeline.counters
        return ServiceReport(
            counters.received,
            counters.stored,
            counters.rejected,
            counters.alerts,
            time.monotonic() - started,
        )

    def request_stop(self) -> None:
        self._stop.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.warning(
            "received %s: finishing the batch in hand and stopping", signal.Signals(signum).name
        )
        self._stop.set()
