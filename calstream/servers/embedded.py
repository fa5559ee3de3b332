"""An MQTT broker inside the calstream process (amqtt): the broker of `calstream demo`.

amqtt runs on its own asyncio loop in a daemon thread. It is bound to 127.0.0.1 explicitly
(its default is every interface) and logs quietly (its packet logger costs throughput).

It cannot keep the pipeline's promises (FIELD_NOTES.md): amqtt 0.12 waits a hard-coded 5 s for
a subscriber's PUBACK and then drops the delivery, so a store write slower than that loses
readings; and everything it queued dies with the process. `calstream run` therefore starts
mosquitto (:class:`calstream.servers.mosquitto.MosquittoDaemon`) and uses this broker only when
``CALSTREAM_EMBEDDED_BROKER=amqtt`` accepts those risks.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future

from amqtt.broker import Broker

from calstream.servers.base import free_port

log = logging.getLogger(__name__)


class EmbeddedBroker:
    """amqtt in a background thread: ``with EmbeddedBroker() as broker: broker.port``."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="amqtt-broker", daemon=True
        )
        self._broker: Broker | None = None
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }

        async def start() -> Broker:
            broker = Broker(config, loop=self._loop)
            await broker.start()
            return broker

        future: Future[Broker] = asyncio.run_coroutine_threadsafe(start(), self._loop)
        self._broker = future.result(timeout)
        log.info("embedded MQTT broker (amqtt) listening on %s", self.url)

    def stop(self, timeout: float = 10.0) -> None:
        if self._broker is not None:
            broker = self._broker
            self._broker = None
            try:
                asyncio.run_coroutine_threadsafe(broker.shutdown(), self._loop).result(timeout)
            except Exception as exc:  # shutting down: report, never mask the caller's own error
                log.warning("embedded broker did not shut down cleanly: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
