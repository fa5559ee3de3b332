"""Composition of the scale-out engine: ingest forwarders and Faust workers, from settings.

``calstream ingest`` runs one :class:`~ingest.forwarder.Forwarder` (a member of the MQTT 5
shared subscription, forwarding to Kafka); ``calstream worker`` runs one Faust worker of
:func:`~stream_processors.faust_app.make_app` writing to the configured store;
``calstream run --engine faust`` runs one of each in this process. docs/scaling.md says how
they relate and how to size them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tenacity import AsyncRetrying, retry_if_result, stop_after_delay, wait_fixed

from calstream.errors import ServiceError
from calstream.settings import Settings, broker_address
from calstream.wiring import admission_for, policy_for, store_for
from ingest.forward_sinks import KafkaUnavailable, forward_sink_for
from ingest.forwarder import Forwarder, ForwarderCounters
from ingest.importers.fleet_file import read_fleet
from ingest.shared_subscriber import SharedSubscriber
from storage.errors import StorageError
from stream_processors.routing import readings_records

if TYPE_CHECKING:  # Faust is imported by the worker only: a forwarder does not need it
    from stream_processors.faust_app import CalstreamFaust

__all__ = ["KafkaUnavailable", "check_kafka", "declare_topics", "run_ingest", "worker_app"]

log = logging.getLogger(__name__)


def check_kafka(bootstrap: str, timeout_s: float = 10.0) -> None:
    """Raise :class:`KafkaUnavailable` naming the address unless a Kafka broker answers there."""
    from aiokafka import AIOKafkaClient
    from aiokafka.errors import KafkaError

    async def probe() -> None:
        client = AIOKafkaClient(
            bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1e3)
        )
        try:
            await asyncio.wait_for(client.bootstrap(), timeout_s)
        finally:
            await client.close()

    try:
        asyncio.run(probe())
    except (TimeoutError, OSError, KafkaError) as exc:
        raise KafkaUnavailable(
            f"no Kafka broker answered at {bootstrap} within {timeout_s:.0f} s "
            f"({type(exc).__name__}: {exc}); set CALSTREAM_KAFKA to the bootstrap address"
        ) from exc


def declare_topics(
    settings: Settings, changelogs: Sequence[str] = (), timeout_s: float = 30.0
) -> None:
    """Create the readings, calibrations and dead-letters topics, and the worker's table
    ``changelogs``, where missing.

    Each gets ``CALSTREAM_TOPIC_PARTITIONS`` partitions and three replicas, or one per broker on
    a smaller cluster; calibrations and changelogs are compacted. Left to itself, Kafka creates a
    topic on its first use with the broker's default partition count: a worker then refuses a
    readings topic whose partitions differ from its tables' changelogs (Faust's
    ``PartitionsMismatch``), and a calibrations topic that is not there when a worker subscribes
    is never read by it. Faust creates the changelogs itself, but just before its consumer joins
    the group: when the new global table's changelog is not yet in that consumer's metadata,
    faust-streaming 0.15's assignor fails (KeyError) and the worker never gets a partition.
    A readings, calibrations or changelog topic that already exists with another partition count
    raises :class:`ServiceError`: the count cannot be lowered, and raising it moves instruments
    to other partitions (docs/scaling.md).
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError, TopicAlreadyExistsError

    partitions = settings.topic_partitions
    compacted = {"cleanup.policy": "compact"}
    configs: dict[str, dict[str, str]] = {
        settings.topic_readings: {},
        settings.topic_calibrations: compacted,
        settings.topic_dead_letters: {},
        **dict.fromkeys(changelogs, compacted),
    }
    keyed = {settings.topic_readings, settings.topic_calibrations, *changelogs}

    async def declare() -> dict[str, int]:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=int(timeout_s * 1e3)
        )
        await admin.start()
        try:
            replicas = min(3, len((await admin.describe_cluster())["brokers"]))
            response = await admin.create_topics(
                [NewTopic(t, partitions, replicas, topic_configs=c) for t, c in configs.items()]
            )
            existing = []
            for topic, code, message in response.topic_errors:
                if code == TopicAlreadyExistsError.errno:
                    existing.append(topic)
                elif code != 0:
                    raise ServiceError(f"Kafka refused to create topic {topic}: {message} ({code})")
            # A topic another process has just created may not be in this broker's metadata
            # yet (no partitions, an error code): asked again until it is.
            async for attempt in AsyncRetrying(
                retry=retry_if_result(lambda counts: 0 in counts.values()),
                wait=wait_fixed(0.2),
                stop=stop_after_delay(timeout_s),
                retry_error_callback=lambda state: state.outcome.result(),
            ):
                with attempt:
                    described = await admin.describe_topics([t for t in existing if t in keyed])
                    counts = {
                        t["topic"]: len(t["partitions"]) if t["error_code"] == 0 else 0
                        for t in described
                    }
                if not attempt.retry_state.outcome.failed:
                    attempt.retry_state.set_result(counts)
            return counts
        finally:
            await admin.close()

    try:
        counts = asyncio.run(declare())
    except KafkaError as exc:
        raise KafkaUnavailable(
            f"Kafka at {settings.kafka_bootstrap} (CALSTREAM_KAFKA) did not answer while the "
            f"topics were declared: {type(exc).__name__}: {exc}"
        ) from exc
    for topic, count in counts.items():
        if count != partitions:
            raise ServiceError(
                f"Kafka topic {topic} has {count} partitions, CALSTREAM_TOPIC_PARTITIONS says "
                f"{partitions}: set it to {count}, or use new topic names"
            )


def ingest_client_id(settings: Settings) -> str:
    return settings.ingest_client_id or f"calstream-ingest-{socket.gethostname()}"


def run_ingest(
    settings: Settings, sink_url: str, stop: threading.Event, report_every_s: float = 10.0
) -> ForwarderCounters:
    """Forward from the shared subscription to ``sink_url`` (``kafka`` or ``sqlite:PATH``)."""
    if not settings.broker:
        raise ValueError("calstream ingest needs CALSTREAM_BROKER (mqtt://host:port)")
    fleet = read_fleet(settings.fleet_path)
    client_id = ingest_client_id(settings)
    if sink_url == "kafka":
        check_kafka(settings.kafka_bootstrap)
        declare_topics(settings)
    sink = forward_sink_for(
        sink_url,
        kafka=settings.kafka_bootstrap,
        readings_topic=settings.topic_readings,
        dead_letters_topic=settings.topic_dead_letters,
        client_id=client_id,
    )
    host, port = broker_address(settings.broker)
    password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    subscriber = SharedSubscriber(
        host, port, client_id=client_id, group=settings.shared_group,
        username=settings.mqtt_username, password=password,
    )  # fmt: skip
    try:
        subscriber.start()
        forwarder = Forwarder(
            subscriber, admission_for(fleet, settings), readings_records(fleet.instruments), sink
        )
        log.warning(
            "calstream ingest %s: member of $share/%s at %s:%d, forwarding to %s",
            client_id, settings.shared_group, host, port,
            settings.kafka_bootstrap if sink_url == "kafka" else sink_url,
        )  # fmt: skip
        reported = 0.0
        while not stop.is_set():
            forwarder.run_once()
            now = time.monotonic()
            if now - reported >= report_every_s:
                reported = now
                c = forwarder.counters
                log.info(
                    "messages %d, readings forwarded %d, rejected %d, records %d",
                    c.messages, c.forwarded, c.rejected, c.records,
                )  # fmt: skip
        return forwarder.counters
    finally:
        subscriber.stop()
        sink.close()


def worker_app(settings: Settings, data_dir: Path | None = None) -> CalstreamFaust:
    """The Faust app of a worker: the fleet, the policy, the topics, the configured store."""
    from stream_processors.faust_app import FaustTopics, make_app

    fleet = read_fleet(settings.fleet_path)
    store = store_for(settings)
    store.register_fleet(fleet)
    bootstrap = [f"kafka://{a.strip()}" for a in settings.kafka_bootstrap.split(",")]
    return make_app(
        fleet,
        broker=bootstrap,
        store=settings.faust_store,
        app_id=settings.faust_app_id,
        policy=policy_for(settings),
        sink=store.write,
        sink_unavailable=(StorageError,),
        topics=FaustTopics(settings.topic_readings, settings.topic_calibrations),
        partitions=settings.topic_partitions,
        data_dir=data_dir or settings.work_dir / "faust",
    )


def run_worker(settings: Settings) -> None:
    """Run one Faust worker until SIGTERM or Ctrl-C (Faust handles the signals)."""
    import faust

    check_kafka(settings.kafka_bootstrap)
    engine = worker_app(settings)
    declare_topics(
        settings, [table.changelog_topic.get_topic_name() for table in engine.app.tables.values()]
    )
    log.warning(
        "calstream worker: Kafka %s, topic %s (%d partitions), tables in %s",
        settings.kafka_bootstrap, settings.topic_readings, settings.topic_partitions,
        settings.faust_store,
    )  # fmt: skip
    faust.Worker(engine.app, loglevel=settings.log_level.lower()).execute_from_commandline()


def run_faust_engine(settings: Settings) -> None:
    """One forwarder (thread) and one worker in this process: the scale-out engine on one host."""
    check_kafka(settings.kafka_bootstrap)
    if not settings.broker:
        raise ValueError("--engine faust needs CALSTREAM_BROKER (mqtt://host:port)")
    stop = threading.Event()
    failure: list[BaseException] = []

    def forward() -> None:
        try:
            run_ingest(settings, "kafka", stop)
        except BaseException as exc:  # surfaced in the log; the worker keeps its partitions
            failure.append(exc)
            log.exception("the ingest forwarder stopped")

    thread = threading.Thread(target=forward, name="calstream-ingest", daemon=True)
    thread.start()
    try:
        run_worker(settings)
    finally:
        stop.set()
        thread.join(30)
