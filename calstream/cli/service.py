"""`calstream run`, `calstream ingest`, `calstream worker`: the platform as services."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer
from rich.console import Console

from calstream.cli.common import StoreOption, fail, load_settings, service_logging, with_store
from calstream.settings import Settings
from ingest.errors import BrokerUnavailable, KafkaUnavailable
from metrology.errors import CalstreamError


def run(
    report_every: Annotated[
        float,
        typer.Option("--report-every", min=0.5, help="Seconds between progress lines in the log."),
    ] = 10.0,
    store: StoreOption = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="embedded: one process (default). faust: an ingest forwarder and a Faust worker "
            "in this process, through Kafka (CALSTREAM_KAFKA); more of either with "
            "`calstream ingest` / `calstream worker` (docs/scaling.md).",
        ),
    ] = "embedded",
) -> None:
    """Run the pipeline as a service: broker -> processing -> store, until SIGTERM or Ctrl-C.

    Configure with CALSTREAM_* variables or CALSTREAM_CONFIG (see README): CALSTREAM_BROKER,
    CALSTREAM_FLEET, CALSTREAM_DB. Without CALSTREAM_BROKER it starts Debian's mosquitto on
    127.0.0.1:1883 (CALSTREAM_EMBEDDED_BROKER_PORT) as a process of its own, persistence in
    the work folder: the broker outlives a crash, and the next run reuses it. Without mosquitto
    it refuses to start, unless CALSTREAM_EMBEDDED_BROKER=amqtt accepts an in-process broker
    that gives up on deliveries not acknowledged within 5 s and loses its queue with the process.
    """
    from calstream.runtime.service import Service

    if engine not in ("embedded", "faust"):
        fail(f"--engine must be embedded or faust, not {engine!r}")
    settings = with_store(load_settings(), store)
    if engine == "faust":
        _run_scale_out(settings, "engine")
        return
    service_logging(settings)
    try:
        service = Service(settings)
    except (CalstreamError, OSError, ValueError) as exc:
        fail(str(exc))
    try:
        report = service.run(report_every_s=report_every)
    except BrokerUnavailable as exc:
        fail(f"{exc}; check CALSTREAM_BROKER")
    Console(stderr=True).print(
        f"stopped after {report.uptime_s:.0f} s: received {report.received}, stored "
        f"{report.stored}, rejected {report.rejected}, alerts {report.alerts}"
    )


def worker() -> None:
    """Run a Faust worker: readings from Kafka (CALSTREAM_KAFKA) through `step` into the store.

    Workers of one deployment share the readings topic's partitions (CALSTREAM_TOPIC_PARTITIONS
    is the most that can be busy) and keep instrument state in RocksDB tables with changelogs.
    """
    _run_scale_out(load_settings(), "worker")


def ingest(
    sink: Annotated[
        str,
        typer.Option(
            "--sink",
            help="kafka (CALSTREAM_KAFKA, default) or sqlite:PATH (one host, or tests).",
        ),
    ] = "kafka",
) -> None:
    """Run an ingest forwarder: a member of the MQTT 5 shared subscription, forwarding to Kafka.

    Give every forwarder its own CALSTREAM_INGEST_CLIENT_ID (a durable session each) and the
    same CALSTREAM_SHARED_GROUP; the broker spreads the gateways' messages among them.
    """
    _run_scale_out(load_settings(), "ingest", sink)


def _run_scale_out(settings: Settings, part: str, sink: str = "kafka") -> None:
    from calstream.runtime import scale_out

    service_logging(settings)
    try:
        if part == "worker":
            scale_out.run_worker(settings)
        elif part == "engine":
            scale_out.run_faust_engine(settings)
        else:
            stop = threading.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
            counters = scale_out.run_ingest(settings, sink, stop)
            Console(stderr=True).print(
                f"stopped: {counters.messages} messages, {counters.forwarded} readings forwarded "
                f"in {counters.records} records, {counters.rejected} rejected"
            )
    except KafkaUnavailable as exc:
        fail(str(exc))
    except BrokerUnavailable as exc:
        fail(f"{exc}; check CALSTREAM_BROKER")
    except (CalstreamError, OSError, ValueError) as exc:
        fail(str(exc))
