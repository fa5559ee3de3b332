"""Publishing simulated gateway batches to an MQTT broker at QoS 1, with bounded in-flight messages.

One paho-mqtt 2.x connection carries the whole simulated fleet (every gateway's topic). paho
accepts QoS 1 publishes without bound and fails with ``MQTT_ERR_QUEUE_SIZE`` once 65,535 are
outstanding (FIELD_NOTES.md, MQTT), so the publisher keeps its own window: at most
``max_inflight`` messages may wait for their PUBACK; :meth:`GatewayPublisher.publish_batch`
blocks on a condition variable, signalled from ``on_publish``, while the window is full, and
raises :class:`~edge_sim.errors.BackpressureTimeout` if nothing is acknowledged for ``timeout``.

Readings count as delivered (``readings_acked``) only when the broker acknowledged their message.
While the connection is down paho keeps the unacknowledged messages and sends them again after it
reconnects by itself (``reconnect_delay_set``); the window keeps the backlog bounded meanwhile.

Payloads are :func:`metrology.wire.encode` text, produced by the faster, byte-identical
:func:`metrology.wire.encode`.

Store-and-forward (with a :class:`~edge_sim.spool.Spool`): while the broker is unreachable (the
first connection failed, or the connection dropped), each message is appended to the on-disk
spool instead of paho's memory, and :meth:`GatewayPublisher.connect` does not raise when the
broker is away. A forwarding thread publishes the spool oldest first once the broker is back,
with the same in-flight window, and deletes each message after its PUBACK. Order per gateway is
kept: after a reconnect nothing is taken from the spool until the messages paho had in flight
when the connection dropped (and re-sends by itself) are acknowledged, and new messages go to
the spool while it holds any. A full spool refuses the message (:class:`~edge_sim.spool.SpoolFull`,
counted in ``readings_refused``); nothing already spooled is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edge_sim.errors import BackpressureTimeout, ConnectError, PublishError
from edge_sim.spool import Spool, SpoolError, SpoolFull
from metrology.reading import Reading
from metrology.wire import encode, readings_topic

log = logging.getLogger(__name__)

DEFAULT_CLIENT_ID = "calstream-edge-sim"
DEFAULT_MAX_INFLIGHT = 1000
QOS_AT_LEAST_ONCE = 1


class GatewayPublisher:
    """Publishes batches of readings as wire payload v1 at QoS 1 over one MQTT connection."""

    def __init__(
        self,
        client_id: str = DEFAULT_CLIENT_ID,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        *,
        clean_session: bool = True,
        keepalive: int = 30,
        username: str | None = None,
        password: str | None = None,
        reconnect_min_delay: int = 1,
        reconnect_max_delay: int = 30,
        spool: Spool | None = None,
    ) -> None:
        if not 1 <= max_inflight <= 65_000:
            raise ValueError(f"max_inflight must be within 1..65000, got {max_inflight}")
        self.client_id = client_id
        self.max_inflight = max_inflight
        self.keepalive = keepalive
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        # paho's own window is as wide as ours: ours decides, paho never queues behind it.
        self._client.max_inflight_messages_set(max_inflight)
        self._client.reconnect_delay_set(reconnect_min_delay, reconnect_max_delay)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._window = threading.Condition()
        self._inflight: dict[int, int] = {}
        """mid -> readings in the message, for messages not yet acknowledged."""
        self._acked_early: set[int] = set()
        """PUBACKs that arrived before ``publish`` returned their mid (the network thread won)."""
        self._connected = threading.Event()
        self._connect_result: Any = None
        self._started = False
        self.spool = spool
        self._spool_ids: dict[int, int] = {}
        """mid -> spool id, for spooled messages in flight."""
        self._delivered: list[int] = []
        """Spool ids the broker acknowledged, to delete from the spool."""
        self._cursor = 0
        """Highest spool id handed to paho (later ones wait in the spool)."""
        self._hold = True
        """Not connected yet, or reconnected with messages of the old connection in flight."""
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._forwarder: threading.Thread | None = None
        self.readings_spooled = 0
        self.readings_refused = 0
        self.messages_refused = 0
        self.readings_sent = 0
        self.readings_acked = 0
        self.messages_sent = 0
        self.messages_acked = 0
        self.connections = 0

    # --- lifecycle ---

    def connect(self, host: str = "127.0.0.1", port: int = 1883, timeout: float = 10.0) -> None:
        """Connect and start the network thread; returns once the broker accepted (CONNACK).

        With a spool, an unreachable broker is not an error: messages are spooled and the
        network thread keeps trying to connect.
        """
        if self.spool is not None:
            self._start_forwarding(host, port, timeout)
            return
        try:
            self._client.connect(host, port, keepalive=self.keepalive)
        except OSError as exc:
            raise ConnectError(f"cannot reach MQTT broker {host}:{port}: {exc}") from exc
        self._client.loop_start()
        self._started = True
        if not self._connected.wait(timeout):
            reason = self._connect_result
            self.close()
            raise ConnectError(
                f"MQTT broker {host}:{port} did not accept the connection within {timeout} s"
                + (f" ({reason})" if reason is not None else "")
            )

    def _start_forwarding(self, host: str, port: int, timeout: float) -> None:
        try:
            self._client.connect(host, port, keepalive=self.keepalive)
        except OSError as exc:
            log.warning("MQTT broker %s:%d unreachable (%s): spooling to disk", host, port, exc)
            self._client.connect_async(host, port, keepalive=self.keepalive)
        self._client.loop_start()
        self._started = True
        self._forwarder = threading.Thread(
            target=self._forward_loop, name=f"{self.client_id}-spool", daemon=True
        )
        self._forwarder.start()
        if not self._connected.wait(timeout):
            log.warning("no CONNACK from %s:%d within %s s: spooling to disk", host, port, timeout)

    def close(self) -> None:
        """Disconnect and stop the network thread.

        Unacknowledged messages are abandoned, except spooled ones: they stay in the spool.
        """
        if self._forwarder is not None:
            self._closing.set()
            self._wake.set()
            self._forwarder.join(30)
            self._forwarder = None
        if self._started:
            self._client.disconnect()
            self._client.loop_stop()
            self._started = False

    def __enter__(self) -> GatewayPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def inflight(self) -> int:
        """Messages published and not yet acknowledged."""
        with self._window:
            return len(self._inflight)

    # --- publishing ---

    def publish_batch(
        self,
        tenant: str,
        site: str,
        gateway: str,
        readings: Sequence[Reading],
        timeout: float | None = 60.0,
    ) -> int:
        """Publish one batch as one message; returns its message id.

        Blocks while ``max_inflight`` messages await their PUBACK; raises
        :class:`BackpressureTimeout` if the window does not open within ``timeout`` seconds.
        """
        if not readings:
            raise ValueError("a batch needs at least one reading (the wire refuses empty batches)")
        return self.publish_payload(
            readings_topic(tenant, site, gateway),
            encode(tenant, site, gateway, readings),
            len(readings),
            timeout,
        )

    def publish_payload(
        self, topic: str, payload: bytes, readings: int, timeout: float | None = 60.0
    ) -> int:
        """Publish an already encoded payload of ``readings`` readings; returns its message id.

        The same flow control as :meth:`publish_batch` (which encodes, then calls this).
        With a spool, while the broker is away (or the spool still holds messages) the message
        is appended to the spool and 0 is returned; :class:`~edge_sim.spool.SpoolFull` when it
        does not fit (counted in ``readings_refused``).
        """
        if self.spool is not None and self._to_spool(topic, payload, readings):
            return 0
        with self._window:
            if not self._window.wait_for(lambda: len(self._inflight) < self.max_inflight, timeout):
                raise BackpressureTimeout(
                    f"{self.max_inflight} messages unacknowledged for {timeout} s "
                    f"(connected: {self.connected}); {topic} not published"
                )
        # Not under our lock: paho calls on_publish while holding its own message lock, which
        # publish() needs too.
        info = self._client.publish(topic, payload, qos=QOS_AT_LEAST_ONCE)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            # NO_CONN is fine: paho keeps the message and sends it after reconnecting.
            raise PublishError(f"{topic}: paho refused the message: {mqtt.error_string(info.rc)}")
        with self._window:
            self.messages_sent += 1
            self.readings_sent += readings
            if info.mid in self._acked_early:
                self._acked_early.discard(info.mid)
                self._count_ack(readings)
            else:
                self._inflight[info.mid] = readings
        return info.mid

    def publish_all(self, batches: Iterable[Sequence[Any]], timeout: float | None = 60.0) -> int:
        """Publish ``(tenant, site, gateway, readings)`` batches in order; returns readings sent."""
        sent = 0
        for tenant, site, gateway, readings in batches:
            self.publish_batch(tenant, site, gateway, readings, timeout)
            sent += len(readings)
        return sent

    def _to_spool(self, topic: str, payload: bytes, readings: int) -> bool:
        """Spool the message if it may not go straight to paho; True if spooled."""
        spool = self.spool
        assert spool is not None
        with self._window:
            if self.connected and not self._hold and spool.empty:
                return False
            try:
                spool.append(topic, payload, readings)
            except SpoolFull:
                self.messages_refused += 1
                self.readings_refused += readings
                raise
            self.readings_spooled += readings
        self._wake.set()
        return True

    @property
    def spooled(self) -> int:
        """Messages in the spool (sent or not, not yet acknowledged); 0 without a spool."""
        return 0 if self.spool is None else self.spool.depth.messages

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every published message is acknowledged; False if ``timeout`` ran out.

        With a spool, also until the spool is empty (every spooled message acknowledged).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        spool = self.spool
        with self._window:
            while self._inflight or (spool is not None and not spool.empty):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._window.wait(remaining)
            return True

    # --- forwarding the spool ---

    def _forward_loop(self) -> None:
        """Publish spooled messages in order while connected; delete the acknowledged ones."""
        spool = self.spool
        assert spool is not None
        while not self._closing.is_set():
            self._wake.wait(0.1)
            self._wake.clear()
            with self._window:
                delivered, self._delivered = self._delivered, []
            try:
                spool.remove(delivered)
            except SpoolError:
                log.exception("spool: cannot delete delivered messages; trying again")
                with self._window:
                    self._delivered[:0] = delivered
            with self._window:
                self._window.notify_all()  # flush() waits for the spool to empty
                if not self.connected:
                    continue
                if self._hold:
                    if self._inflight:
                        continue  # paho re-sends what the old connection had in flight: first
                    self._hold = False
                room = self.max_inflight - len(self._inflight)
            if room <= 0:
                continue
            for message in spool.after(self._cursor, room):
                if not self.connected:
                    break
                info = self._client.publish(message.topic, message.payload, qos=QOS_AT_LEAST_ONCE)
                if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                    log.error(
                        "spool: paho refused %s: %s", message.topic, mqtt.error_string(info.rc)
                    )
                    break
                self._cursor = message.id
                with self._window:
                    self.messages_sent += 1
                    self.readings_sent += message.readings
                    if info.mid in self._acked_early:
                        self._acked_early.discard(info.mid)
                        self._count_ack(message.readings)
                        self._delivered.append(message.id)
                    else:
                        self._inflight[info.mid] = message.readings
                        self._spool_ids[info.mid] = message.id

    # --- paho callbacks (network thread) ---

    def _count_ack(self, count: int) -> None:
        self.messages_acked += 1
        self.readings_acked += count
        self._window.notify_all()

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        with self._window:
            count = self._inflight.pop(mid, None)
            if count is None:
                self._acked_early.add(mid)
            else:
                self._count_ack(count)
                spool_id = self._spool_ids.pop(mid, None)
                if spool_id is not None:
                    self._delivered.append(spool_id)
                    self._wake.set()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self._connect_result = reason_code
        if not reason_code.is_failure:
            self.connections += 1
            self._connected.set()
            self._wake.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        with self._window:
            self._connected.clear()
            self._hold = True
