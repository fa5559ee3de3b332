"""A throw-away Apache Kafka broker (KRaft, one node) in a folder: tests and trials.

The jars come from Maven Central: ``make test-servers`` (``scripts/install-kafka.sh``) puts
``kafka_2.13`` and its runtime jars, as ``scripts/kafka/pom.xml`` names them, into
``.cache/kafka/<version>/lib/``; ``CALSTREAM_KAFKA_LIB`` may name another folder of them.

``LocalKafka(folder)`` writes a ``server.properties`` (one node that is broker and controller, a
PLAINTEXT and a CONTROLLER listener on free ports of 127.0.0.1, its log folder under ``folder``,
one replica for every internal topic, topics created on first use), formats the storage with a
random cluster id the first time ``start()`` runs, and starts ``kafka.Kafka`` in a small JVM.
``start()`` returns once the broker answers a metadata request, ``stop()`` shuts it down
gracefully (SIGTERM), ``kill()`` with SIGKILL, and ``start()`` again brings it back on the same
ports and files (outage tests). The JVM's output and the broker's log go to ``folder/kafka.log``.
:class:`KafkaForTest` is the broker as one test sees it (the ``kafka`` fixture).
"""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from calstream.runtime.scale_out import KafkaUnavailable, check_kafka
from calstream.servers.base import LocalServer, find_binary, free_port

ROOT = Path(__file__).resolve().parents[2]
POM = ROOT / "scripts" / "kafka" / "pom.xml"
INSTALL = "`make test-servers` (or `scripts/install-kafka.sh`)"


def kafka_version() -> str:
    """The Kafka version ``scripts/kafka/pom.xml`` fetches (its ``kafka.version`` property)."""
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = (
        ElementTree.parse(POM).getroot().findtext("m:properties/m:kafka.version", None, namespace)
    )
    if not version:
        raise ValueError(f"{POM} sets no kafka.version property")
    return version.strip()


def kafka_lib_dir() -> Path:
    """The folder of the broker's jars; raises with what to run when they are missing."""
    explicit = os.environ.get("CALSTREAM_KAFKA_LIB")
    version = kafka_version()
    folder = Path(explicit) if explicit else ROOT / ".cache" / "kafka" / version / "lib"
    if not any(folder.glob("kafka_2.13-*.jar")):
        raise FileNotFoundError(
            f"Apache Kafka {version}'s jars are not in {folder}: {INSTALL} fetches them from "
            "Maven Central (Java 17 and Maven needed; CALSTREAM_KAFKA_LIB may name another folder)"
        )
    return folder


def java_binary() -> str:
    """Path of ``java``; raises with what to do when it is missing."""
    return find_binary("java", "default-jre-headless")


def random_cluster_id() -> str:
    """A cluster id as ``kafka-storage random-uuid`` makes one: 16 random bytes, base64url.

    Kafka never hands out one that starts with a dash (a command line would read it as an option).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _log4j2(pattern: str = "[%d] %p %m (%c)%n") -> str:
    # Everything on standard output, which LocalServer sends to the log file of the folder.
    # Log4j's own shutdown hook is off: it would stop the log while the broker still shuts down.
    # The dumps of every configuration value (several hundred lines at each start) are left out.
    return "\n".join(
        [
            "status = warn",
            "shutdownHook = disable",
            "appender.out.type = Console",
            "appender.out.name = out",
            "appender.out.target = SYSTEM_OUT",
            "appender.out.layout.type = PatternLayout",
            f"appender.out.layout.pattern = {pattern}",
            "rootLogger.level = INFO",
            "rootLogger.appenderRef.out.ref = out",
            "logger.config.name = org.apache.kafka.common.config.AbstractConfig",
            "logger.config.level = WARN",
            "logger.kafkaconfig.name = kafka.server.KafkaConfig",
            "logger.kafkaconfig.level = WARN",
            "",
        ]
    )


class LocalKafka(LocalServer):
    """One Kafka node (broker and controller) on free ports of 127.0.0.1, files in ``folder``."""

    name = "kafka"
    heap = "384m"
    """The broker's JVM heap: enough for tests, small beside the other servers on two cores."""

    def __init__(
        self, folder: Path, port: int | None = None, controller_port: int | None = None
    ) -> None:
        self.java = java_binary()
        self.lib = kafka_lib_dir()
        super().__init__(folder, port)
        self.controller_port = controller_port or free_port()
        self.data = folder / "data"
        self.config = folder / "server.properties"
        self.logging = folder / "log4j2.properties"
        self.config.write_text(self.server_properties())
        self.logging.write_text(_log4j2())

    @property
    def bootstrap(self) -> str:
        """``host:port`` for clients (aiokafka's ``bootstrap_servers``, ``CALSTREAM_KAFKA``)."""
        return f"{self.host}:{self.port}"

    def server_properties(self) -> str:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},"
            f"CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data),
            # one node: every internal topic has one replica
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # fewer partitions of the internal topics than the production default of 50: the
            # first consumer group of a run waits for them to be created
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.num.partitions": "4",
            # after a kill -9 the restarted node registers once its old session expired: 3 s,
            # not the default 9 s
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "3000",
            # a group's first member is served at once, not after 3 s
            "group.initial.rebalance.delay.ms": "0",
            # a topic a client names is created on first use, as the compose profile's Kafka does
            "auto.create.topics.enable": "true",
            # two cores, other servers beside it
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
            "log.cleaner.threads": "1",
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _java(self, main_class: str, *args: str, heap: str | None = None) -> list[str]:
        return [
            self.java,
            f"-Xmx{heap or self.heap}",
            "-Xms64m",
            # one GC thread and the quick JIT tier: a test broker starts fast and stays small
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.logging}",
            "-cp",
            f"{self.lib}/*",
            main_class,
            *args,
        ]

    def command(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.config))

    def format_storage(self) -> None:
        """Format the log folder for a new cluster (``kafka-storage format``), once."""
        done = subprocess.run(
            self._java(
                "kafka.tools.StorageTool", "format",
                "--cluster-id", random_cluster_id(), "--config", str(self.config),
                heap="256m",
            ),
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        with self.log.open("a") as log:
            log.write(done.stdout + done.stderr)
        if done.returncode != 0:
            raise RuntimeError(
                f"formatting the Kafka storage in {self.data} failed ({done.returncode}):\n"
                f"{(done.stdout + done.stderr)[-4000:]}"
            )

    @property
    def formatted(self) -> bool:
        return (self.data / "meta.properties").exists()

    def start(self, timeout: float = 120.0) -> None:
        """(Re)start on the same ports and folder; returns once a metadata request is answered.

        The first start formats the storage folder. A cold JVM on a busy two-core machine takes
        several seconds, hence the long timeout.
        """
        if not self.formatted:
            self.format_storage()
        since = self.log.stat().st_size if self.log.exists() else 0
        try:
            super().start(timeout)
        except RuntimeError as exc:
            raise RuntimeError(
                f"{str(exc).splitlines()[0]}\n{self.log_errors(since)}"
                f"--- the end of {self.log}:\n{self.log.read_text(errors='replace')[-3000:]}"
            ) from exc

    def log_errors(self, since: int = 0, limit: int = 8) -> str:
        """The first ERROR lines of the log from byte ``since``, each with the line after it
        (the exception). A broker that fails to start logs its whole shutdown after the cause:
        the end of the log alone rarely says why."""
        with self.log.open("rb") as log:
            log.seek(since)
            lines = log.read().decode(errors="replace").splitlines()
        found = [
            "\n".join(lines[n : n + 2])
            for n, line in enumerate(lines)
            if re.match(r"\[[^\]]+\] (ERROR|FATAL) ", line)
        ]
        return "".join(f"{error}\n" for error in found[:limit])

    def ready(self) -> bool:
        with socket.socket() as probe:  # cheap check first: no client while the port is closed
            if probe.connect_ex((self.host, self.port)) != 0:
                return False
        try:
            check_kafka(self.bootstrap, timeout_s=5.0)
        except KafkaUnavailable:
            return False
        return True

    def stop(self, timeout: float = 60.0) -> None:
        """Shut down gracefully (SIGTERM: the node closes its logs cleanly), then wait."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@dataclass(frozen=True)
class KafkaForTest:
    """The session's Kafka broker, seen from one test."""

    bootstrap: str
    """``host:port`` (``CALSTREAM_KAFKA``, aiokafka's ``bootstrap_servers``)."""
    server: LocalKafka | None
    """The broker the session started (stop, kill, start it), None for an outside broker."""
    prefix: str
    """Unique to the test: ``calstream-test-<test name>-<8 hex digits>``."""

    def name(self, what: str) -> str:
        """A topic name or Faust app id of this test: ``<prefix>.<what>``."""
        return f"{self.prefix}.{what}"
