"""A durable MQTT subscription that acknowledges a message only once its readings are durable.

FIELD_NOTES traps this class avoids:

- a fixed client id with ``clean_session=False`` (MQTT 3.1.1) keeps the session, and the
  broker's queue of QoS 1 messages, across restarts of this process;
- paho acknowledges a QoS 1 PUBLISH as soon as the callback returns unless manual
  acknowledgement is on; here the caller acknowledges after the store committed the batch;
- an acknowledgement is only valid on the connection that delivered the message: after a
  reconnect the broker re-sends what was not acknowledged, so stale acknowledgements are dropped.

Back-pressure: the inbound queue is bounded; when it is full the network thread waits, the
socket stops being read, and the broker holds the messages (up to its queue limits).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ingest.errors import BrokerUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InboundMessage:
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_at: float
    connection: int
    """Which connection delivered it: acknowledgements are only sent on that one."""


class DurableSubscriber:
    """Subscribes with a persistent session and hands messages out in batches."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str,
        topic: str,
        queue_size: int = 2_000,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 60,
    ) -> None:
        self._host, self._port, self._topic, self._keepalive = host, port, topic, keepalive
        self._queue: queue.Queue[InboundMessage] = queue.Queue(maxsize=queue_size)
        self._connection = 0
        self._connected = threading.Event()
        self._stopping = False
        self.messages_received = 0
        self.messages_acked = 0
        self._unconfirmed: list[mqtt.MQTTMessageInfo] = []
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        if username:
            self.client.username_pw_set(username, password)
        self.client.manual_ack_set(True)
        self.client.max_inflight_messages_set(1_000)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # --- lifecycle ---

    def _connect(self) -> None:
        """Open the connection (a durable session: the client was made with a fixed id and
        ``clean_session=False``)."""
        self.client.connect(self._host, self._port, keepalive=self._keepalive)

    def start(self, timeout: float = 10.0) -> None:
        """Connect, subscribe and start the network thread; raise if the broker does not answer."""
        try:
            self._connect()
        except OSError as exc:
            raise BrokerUnavailable(
                f"cannot reach the MQTT broker at {self._host}:{self._port}: {exc}"
            ) from exc
        self.client.loop_start()
        if not self._connected.wait(timeout):
            self.client.loop_stop()
            raise BrokerUnavailable(
                f"the MQTT broker at {self._host}:{self._port} did not accept the connection "
                f"within {timeout:.0f} s"
            )

    def stop(self, flush_timeout: float = 10.0) -> None:
        """Disconnect cleanly after the broker confirmed our publishes (alerts).

        Messages received but not acknowledged stay with the broker for the next start.
        """
        if self.connected:
            self.flush_publishes(flush_timeout)
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def backlog(self) -> int:
        """Messages received and not yet handed out."""
        return self._queue.qsize()

    # --- consuming ---

    def get_batch(
        self, max_messages: int, timeout: float, linger: float = 0.0
    ) -> list[InboundMessage]:
        """Up to ``max_messages`` messages; waits at most ``timeout`` for the first one.

        After the first message, keeps collecting for up to ``linger`` seconds while fewer than
        ``max_messages`` arrived: larger batches make fewer, cheaper commits (like Kafka's
        ``linger.ms``), at the price of that much latency.
        """
        try:
            first = self._queue.get(timeout=timeout)
        except queue.Empty:
            return []
        batch = [first]
        get = self._queue.get
        deadline = time.monotonic() + linger
        try:
            while len(batch) < max_messages:
                remaining = deadline - time.monotonic()
                batch.append(get(timeout=remaining) if remaining > 0 else get(block=False))
        except queue.Empty:
            pass
        return batch

    def ack(self, messages: Sequence[InboundMessage]) -> int:
        """Acknowledge messages whose readings are durable; returns how many were acknowledged."""
        current = self._connection
        acked = 0
        for message in messages:
            if message.qos == 0:
                continue
            if message.connection != current:
                continue  # the broker re-sends it on the new connection; the store is idempotent
            self.client.ack(message.mid, message.qos)
            acked += 1
        self.messages_acked += acked
        return acked

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish on the same connection (alerts); paho queues it while disconnected."""
        info = self.client.publish(topic, payload, qos=qos)
        pending = self._unconfirmed
        pending.append(info)
        if len(pending) > 1_000:  # forget what the broker already confirmed: memory stays bounded
            self._unconfirmed = [i for i in pending if not i.is_published()]

    def flush_publishes(self, timeout: float = 10.0) -> bool:
        """Wait until the broker confirmed every publish; False if ``timeout`` ran out first."""
        deadline = time.monotonic() + timeout
        for info in self._unconfirmed:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.connected:
                return False
            try:
                info.wait_for_publish(remaining)
            except (RuntimeError, ValueError):  # paho: not queued or connection gone
                return False
            if not info.is_published():
                return False
        self._unconfirmed = []
        return True

    # --- paho callbacks (network thread) ---

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: mqtt.ReasonCode,
        properties: mqtt.Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("MQTT broker refused the connection: %s", reason_code)
            return
        self._connection += 1
        client.subscribe(self._topic, qos=1)
        log.info(
            "subscribed to %s (session %s)",
            self._topic,
            "resumed" if flags.session_present else "new",
        )
        self._connected.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: mqtt.ReasonCode,
        properties: mqtt.Properties | None,
    ) -> None:
        self._connected.clear()
        if not self._stopping:
            log.warning("MQTT connection lost (%s); reconnecting", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        inbound = InboundMessage(
            message.mid, message.qos, message.topic, message.payload, time.time(), self._connection
        )
        self.messages_received += 1
        while True:
            try:
                self._queue.put(inbound, timeout=1.0)
                return
            except queue.Full:
                if self._stopping:
                    return  # not acknowledged: the broker keeps it for the next session
