"""`calstream run`: the pipeline as a long-running service against a broker.

Durable session under a fixed client id, fleet registered in the store at start, the HTTP API
served on the same store (``CALSTREAM_API_PORT``), statistics in the log every
``report_every_s``, and a clean stop on SIGTERM or SIGINT: the batch in hand is
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
from typing import TYPE_CHECKING

from calstream.errors import ServiceError
from calstream.runtime.in_hand import InHandLedger
from calstream.runtime.journal import Journal
from calstream.runtime.observability import serve
from calstream.runtime.pipeline import Pipeline
from calstream.runtime.registry_sync import RegistrySync
from calstream.runtime.tuning import tune_garbage_collector
from calstream.servers.embedded import EmbeddedBroker
from calstream.servers.mosquitto import DEPLOY_MOSQUITTO_CONF, MosquittoDaemon, mosquitto_binary
from calstream.settings import Settings, broker_address
from calstream.wiring import pipeline_for, store_for, subscriber_for
from ingest.errors import BrokerUnavailable
from ingest.importers.fleet_file import read_fleet
from storage.select import describe_store

if TYPE_CHECKING:
    from calstream.api.server import ApiServer

log = logging.getLogger(__name__)

AMQTT_RISK = (
    "amqtt gives up on a QoS 1 delivery the pipeline has not acknowledged within 5 s and never "
    "sends it again (readings held through a store write slower than that are lost if the "
    "pipeline crashes or its connection drops before they are stored), and everything amqtt "
    "queued dies with this process"
)


def local_broker_for(settings: Settings) -> MosquittoDaemon | EmbeddedBroker:
    """The broker `calstream run` starts when ``CALSTREAM_BROKER`` is unset (not started yet).

    Debian's mosquitto by default: a process of its own with the deploy tuning and persistence
    in ``<work_dir>/mosquitto``, so a crash of the pipeline loses nothing the broker took.
    amqtt inside this process only when ``CALSTREAM_EMBEDDED_BROKER=amqtt`` accepts its risks.
    Raises :class:`ServiceError` when mosquitto is wanted and not installed.
    """
    port = settings.embedded_broker_port
    if settings.embedded_broker == "amqtt":
        return EmbeddedBroker(port=port)
    try:
        mosquitto_binary()
    except FileNotFoundError as exc:
        raise ServiceError(
            "CALSTREAM_BROKER is not set and mosquitto, the broker `calstream run` then starts, "
            "is not installed: install it (`apt-get install mosquitto`), or set CALSTREAM_BROKER "
            "to a broker of your own, or set CALSTREAM_EMBEDDED_BROKER=amqtt to run an in-process "
            f"broker knowing that {AMQTT_RISK}"
        ) from exc
    if not DEPLOY_MOSQUITTO_CONF.is_file():  # an installed package without the source tree
        raise ServiceError(
            f"CALSTREAM_BROKER is not set and {DEPLOY_MOSQUITTO_CONF}, the configuration of the "
            "mosquitto `calstream run` then starts, is missing: run calstream from its source "
            "tree (`make install`), or set CALSTREAM_BROKER to a broker of your own"
        )
    return MosquittoDaemon(settings.work_dir / "mosquitto", port)


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
        self._local_broker = None if settings.broker else local_broker_for(settings)
        self.fleet = read_fleet(settings.fleet_path)
        self.store = store_for(settings)
        self.store.register_fleet(self.fleet)
        self._stop = threading.Event()
        self.pipeline: Pipeline | None = None

    def _broker(self) -> tuple[str, int]:
        if self.settings.broker:
            return broker_address(self.settings.broker)
        broker = self._local_broker
        assert broker is not None  # chosen in __init__ whenever no broker is configured
        try:
            broker.start()
        except (RuntimeError, OSError) as exc:
            raise BrokerUnavailable(
                f"CALSTREAM_BROKER is not set and the local broker could not start on "
                f"{broker.url}: {exc}; set CALSTREAM_EMBEDDED_BROKER_PORT to a free port"
            ) from exc
        if isinstance(broker, EmbeddedBroker):
            log.warning(
                "no CALSTREAM_BROKER set: amqtt runs inside this process on %s "
                "(CALSTREAM_EMBEDDED_BROKER=amqtt); %s",
                broker.url,
                AMQTT_RISK,
            )
        else:
            log.warning(
                "no CALSTREAM_BROKER set: %s mosquitto (pid %s) on %s, persistence in %s; it "
                "keeps running if this process crashes, and the next `calstream run` reuses it",
                "reusing the" if broker.reused else "started",
                broker.pid,
                broker.url,
                broker.folder,
            )
        return broker.host, broker.port

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
        ledger = InHandLedger(settings.in_hand_path, poison_after=settings.poison_after_crashes)
        if ledger.crashed_with:
            log.warning(
                "the last run died with %d messages in hand: %d suspect messages are processed "
                "one at a time when they come back; one in hand at %d crashes is filed as a "
                "poison_message dead letter",
                ledger.crashed_with,
                ledger.suspect_count,
                ledger.poison_after,
            )
        self.pipeline = pipeline = pipeline_for(
            self.fleet,
            settings,
            self.store,
            subscriber,
            journal=journal,
            ledger=ledger,
            crash_on=settings.fault_crash_on.encode() if settings.fault_crash_on else None,
        )
        # What the API registered in earlier runs is known before the first reading.
        pipeline.registry = RegistrySync(self.store, pipeline.admission, pipeline.processor)
        pipeline.registry.poll(force=True)
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
        api = self._serve_api()
        log.warning(
            "calstream running: %d instruments, broker %s:%d, store %s",
            len(pipeline.processor.contexts),
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
            if api is not None:
                api.stop()
            if endpoints is not None:
                endpoints.stop()
            pipeline.stop()
            if pipeline.error is None:
                pipeline.final_sweep()
            subscriber.stop()
            if journal is not None:
                journal.close()
            ledger.close()
            self.store.close()
            if self._local_broker is not None:
                # a clean stop ends the broker too; mosquitto saves its queues on the way out
                self._local_broker.stop()
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

    def _serve_api(self) -> ApiServer | None:
        """The HTTP API on this process's store (CALSTREAM_API_HOST/PORT; port 0: none).

        A port that is taken is logged and the pipeline runs on without the API, as it does
        without its metrics endpoint.
        """
        settings = self.settings
        if not settings.api_port:
            return None
        from calstream.api import create_app
        from calstream.api.server import ApiServer

        try:
            server = ApiServer(create_app(self.store), settings.api_host, settings.api_port)
            server.start()
        except (OSError, TimeoutError) as exc:
            log.warning(
                "API not started on %s:%d: %s (set CALSTREAM_API_PORT to a free port, or 0)",
                settings.api_host,
                settings.api_port,
                exc,
            )
            return None
        log.warning("API on %s (OpenAPI document at %s/v1/openapi.json)", server.url, server.url)
        return server

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.warning(
            "received %s: finishing the batch in hand and stopping", signal.Signals(signum).name
        )
        self._stop.set()
