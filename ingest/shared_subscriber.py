"""An MQTT 5 shared subscription with a durable session, for ingest processes that share the load.

Every process of one group subscribes to ``$share/{group}/calstream/v1/+/+/+/readings``; the
broker hands each message to exactly one of them (mosquitto: round robin among the connected
members). Each member keeps a durable session of its own (FIELD_NOTES: fixed client id,
``clean_start=False`` *and* a ``SessionExpiryInterval``, else MQTT 5 keeps no session), so
messages the broker sent to a member and that it did not acknowledge before it went away are
sent to it again when it comes back.

Acknowledgement, batching and back-pressure are :class:`~ingest.subscriber.DurableSubscriber`'s:
manual acknowledgement after the readings are durable downstream.
"""

from __future__ import annotations

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.subscriber import DurableSubscriber
from metrology.wire import READINGS_SUBSCRIPTION

__all__ = ["SharedSubscriber", "shared_subscription"]

DEFAULT_SESSION_EXPIRY_S = 7 * 24 * 3600
"""How long the broker keeps a member's session (and its queued messages) while it is away."""


def shared_subscription(group: str, topic: str = READINGS_SUBSCRIPTION) -> str:
    """The shared-subscription filter of ``group`` for ``topic`` (MQTT 5 §4.8.2)."""
    if not group or any(c in group for c in "/+#"):
        raise ValueError(f"shared subscription group {group!r} must be non-empty, without / + #")
    return f"$share/{group}/{topic}"


class SharedSubscriber(DurableSubscriber):
    """A member of a shared subscription: MQTT 5, durable session, manual acknowledgement."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str,
        group: str,
        queue_size: int = 2_000,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 60,
        session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S,
        receive_maximum: int = 1_000,
    ) -> None:
        super().__init__(
            host, port, client_id=client_id, topic=shared_subscription(group),
            queue_size=queue_size, username=username, password=password, keepalive=keepalive,
        )  # fmt: skip
        self._session_expiry_s = session_expiry_s
        self._receive_maximum = receive_maximum
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
        )
        if username:
            client.username_pw_set(username, password)
        client.manual_ack_set(True)
        client.max_inflight_messages_set(1_000)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client

    def _connect(self) -> None:
        """Connect resuming the session (MQTT 5: ``clean_start=False`` and an expiry)."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self._session_expiry_s
        # The broker sends at most this many unacknowledged QoS 1 messages (MQTT 5 flow control).
        properties.ReceiveMaximum = self._receive_maximum
        self.client.connect(
            self._host,
            self._port,
            keepalive=self._keepalive,
            clean_start=False,
            properties=properties,
        )
