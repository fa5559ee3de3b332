"""Where a forwarder puts validated readings and dead letters: Kafka, or a local SQLite file.

A sink's :meth:`~ForwardSink.forward` returns only once everything it was given is durable
(Kafka: every record acknowledged by all in-sync replicas; SQLite: committed with a full sync);
the forwarder acknowledges the MQTT messages after that, never before.

- :class:`KafkaForwardSink`: production. aiokafka producer with ``acks=all`` and idempotence
  (a retried send is not written twice), keys and values as Faust reads them (UTF-8 key, JSON).
- :class:`SqliteForwardSink`: one machine, or a test: records appended to a SQLite table.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ingest.errors import KafkaUnavailable, SinkUnavailable

__all__ = [
    "ForwardSink",
    "KafkaForwardSink",
    "KafkaUnavailable",
    "SinkUnavailable",
    "SqliteForwardSink",
    "forward_sink_for",
]

Record = tuple[str, dict[str, Any]]
"""A Kafka key and the JSON value of a readings record or a dead letter."""


@runtime_checkable
class ForwardSink(Protocol):
    def forward(self, readings: Sequence[Record], dead_letters: Sequence[Record]) -> None:
        """Make the records durable; raise :class:`SinkUnavailable` if it cannot."""

    def close(self) -> None: ...


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


class SqliteForwardSink:
    """Records appended to ``forwarded`` and ``dead_letters`` tables of one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS forwarded (id INTEGER PRIMARY KEY, key TEXT, value TEXT);
            CREATE TABLE IF NOT EXISTS dead_letters (id INTEGER PRIMARY KEY, key TEXT, value TEXT);
            """
        )
        self._lock = threading.Lock()

    def forward(self, readings: Sequence[Record], dead_letters: Sequence[Record]) -> None:
        try:
            with self._lock, self._db:
                self._db.executemany(
                    "INSERT INTO forwarded (key, value) VALUES (?, ?)",
                    [(k, _json(v).decode()) for k, v in readings],
                )
                self._db.executemany(
                    "INSERT INTO dead_letters (key, value) VALUES (?, ?)",
                    [(k, _json(v).decode()) for k, v in dead_letters],
                )
        except sqlite3.Error as exc:
            raise SinkUnavailable(f"cannot write to {self.path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()


class KafkaForwardSink:
    """An idempotent aiokafka producer (``acks=all``) on its own event-loop thread."""

    def __init__(
        self,
        bootstrap: str,
        readings_topic: str,
        dead_letters_topic: str,
        *,
        client_id: str = "calstream-ingest",
        connect_timeout_s: float = 15.0,
    ) -> None:
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaError

        self.bootstrap = bootstrap
        self.readings_topic = readings_topic
        self.dead_letters_topic = dead_letters_topic
        self._kafka_error = KafkaError
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="calstream-kafka", daemon=True
        )
        self._thread.start()

        async def start() -> Any:
            producer = AIOKafkaProducer(
                bootstrap_servers=bootstrap,
                client_id=client_id,
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                request_timeout_ms=int(connect_timeout_s * 1000),
            )
            await asyncio.wait_for(producer.start(), connect_timeout_s)
            return producer

        try:
            self._producer = self._call(start())
        except (TimeoutError, OSError, KafkaError) as exc:
            self._stop_loop()
            raise KafkaUnavailable(
                f"no Kafka broker answered at {bootstrap} (CALSTREAM_KAFKA) within "
                f"{connect_timeout_s:.0f} s: {type(exc).__name__}: {exc}"
            ) from exc

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def forward(self, readings: Sequence[Record], dead_letters: Sequence[Record]) -> None:
        async def send_all() -> None:
            producer = self._producer
            futures = [
                await producer.send(self.readings_topic, _json(value), key=key.encode())
                for key, value in readings
            ]
            futures += [
                await producer.send(self.dead_letters_topic, _json(value), key=key.encode())
                for key, value in dead_letters
            ]
            await asyncio.gather(*futures)  # every record acknowledged by all in-sync replicas

        try:
            self._call(send_all())
        except (TimeoutError, self._kafka_error) as exc:
            raise SinkUnavailable(
                f"Kafka at {self.bootstrap} did not take the records: {exc}"
            ) from exc

    def close(self) -> None:
        try:
            self._call(self._producer.stop())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def forward_sink_for(
    url: str, *, kafka: str, readings_topic: str, dead_letters_topic: str, client_id: str
) -> ForwardSink:
    """``kafka`` (the bootstrap address from settings) or ``sqlite:PATH``."""
    if url == "kafka":
        return KafkaForwardSink(kafka, readings_topic, dead_letters_topic, client_id=client_id)
    if url.startswith("sqlite:"):
        return SqliteForwardSink(Path(url.removeprefix("sqlite:").removeprefix("//")))
    raise ValueError(f"forward sink {url!r} is neither 'kafka' nor 'sqlite:PATH'")
