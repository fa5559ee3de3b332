"""Prometheus metrics and liveness/readiness endpoints of a running pipeline.

Counts are read from the pipeline's own counters when Prometheus scrapes (a collector), so the
hot path pays nothing for them; the two latency histograms are observed once per batch.

``GET /metrics``  Prometheus text format
``GET /healthz``  200 while the processing thread runs without error (liveness)
``GET /readyz``   200 while the broker connection is up as well (readiness)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from calstream.runtime.pipeline import Pipeline

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class PipelineMetrics:
    """The histograms a pipeline observes, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.store_write_seconds = Histogram(
            "calstream_store_write_seconds",
            "Time to write one batch to the store, commit included.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.received_to_stored_seconds = Histogram(
            "calstream_received_to_stored_seconds",
            "From the arrival of a batch's oldest message to its commit.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def watch(self, pipeline: Pipeline) -> None:
        self.registry.register(_PipelineCollector(pipeline))


class _PipelineCollector(Collector):
    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    def collect(self) -> Iterator[Metric]:
        pipeline = self._pipeline
        counters = pipeline.counters
        for name, help_text, value in (
            ("messages_received", "MQTT messages taken from the broker.", counters.messages),
            ("readings_received", "Readings received (accepted + rejected).", counters.received),
            ("readings_accepted", "Readings that passed validation.", counters.accepted),
            ("readings_stored", "Readings committed to the store.", counters.stored),
            ("readings_duplicate", "Re-delivered, already stored.", counters.duplicates_in_store),
            ("alerts", "Status changes stored and published.", counters.alerts),
        ):  # fmt: skip
            yield CounterMetricFamily(f"calstream_{name}", help_text, value=value)
        rejected = CounterMetricFamily(
            "calstream_readings_rejected",
            "Readings refused, by reason (dead letters).",
            labels=["reason"],
        )
        for reason, count in sorted(counters.rejected_by_reason.items()):
            rejected.add_metric([reason], count)
        yield rejected
        yield GaugeMetricFamily(
            "calstream_subscriber_backlog_messages",
            "Messages received from the broker and not yet processed (bounded queue).",
            value=pipeline.subscriber.backlog,
        )
        yield GaugeMetricFamily(
            "calstream_write_queue_batches",
            "Processed batches waiting for the store writer (bounded queue).",
            value=pipeline.write_backlog,
        )
        depth = pipeline.journal_depth
        for name, help_text, value in (
            ("batches", "Batches in the journal, waiting for the store.", depth.batches),
            ("readings", "Readings in the journal, waiting for the store.", depth.readings),
            ("bytes", "Encoded bytes in the journal (bounded by journal_max_bytes).", depth.bytes),
        ):  # fmt: skip
            yield GaugeMetricFamily(f"calstream_journal_{name}", help_text, value=value)
        yield GaugeMetricFamily(
            "calstream_journal_full",
            "1 while the journal is full: nothing is acknowledged, the broker keeps messages.",
            value=1 if pipeline.journal_is_full else 0,
        )
        yield CounterMetricFamily(
            "calstream_readings_journaled",
            "Readings appended to the journal because the store could not take them.",
            value=counters.journaled,
        )
        yield CounterMetricFamily(
            "calstream_journal_full_episodes",
            "Times the journal was full and the pipeline fell back to back-pressure.",
            value=counters.journal_full,
        )
        watermark = pipeline.processor.watermark
        yield GaugeMetricFamily(
            "calstream_event_time_lag_seconds",
            "Wall clock minus the newest reading time processed (live data: end-to-end lag).",
            value=float("nan") if watermark is None else time.time() - watermark,
        )
        by_status = GaugeMetricFamily(
            "calstream_instruments", "Instruments by health status.", labels=["status"]
        )
        statuses = Counter(
            "NO_DATA" if state.status is None else state.status.value
            for state in list(pipeline.processor.states.values())
        )
        for status, count in sorted(statuses.items()):
            by_status.add_metric([status], count)
        yield by_status


class ObservabilityServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` over HTTP in a daemon thread."""

    def __init__(
        self,
        registry: CollectorRegistry,
        live: Callable[[], bool],
        ready: Callable[[], bool],
        host: str = "127.0.0.1",
        port: int = 9464,
    ) -> None:
        routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {
            "/metrics": lambda: (200, CONTENT_TYPE_LATEST, generate_latest(registry)),
            "/healthz": lambda: _probe(live()),
            "/readyz": lambda: _probe(ready()),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                status, content_type, body = (
                    route() if route else (404, "text/plain", b"not found\n")
                )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("observability: " + format, *args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self.host, self.port = host, int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="observability", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _probe(ok: bool) -> tuple[int, str, bytes]:
    return (200, "text/plain", b"ok\n") if ok else (503, "text/plain", b"not ok\n")


def serve(pipeline: Pipeline, host: str, port: int) -> ObservabilityServer | None:
    """Start the endpoints for ``pipeline``; None (with a warning) if the port is taken."""
    try:
        server = ObservabilityServer(
            pipeline.metrics.registry,
            live=pipeline.alive,
            ready=lambda: pipeline.alive() and pipeline.subscriber.connected,
            host=host,
            port=port,
        )
    except OSError as exc:
        log.warning("metrics endpoint not started on %s:%d: %s", host, port, exc.strerror)
        return None
    server.start()
    return server
