"""Status changes on the tenant's alert topic, ``calstream/v1/{tenant}/alerts`` (QoS 1).

The payload is :func:`metrology.wire.encode_status_change` (``docs/wire-contract.md``). The
channel publishes through a connection the pipeline already holds (its durable subscriber's),
which queues while the broker is away; a broker ACL confines each tenant's readers to its topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from metrology.assessment import StatusChange
from metrology.wire import alerts_topic, encode_status_change


class Publisher(Protocol):
    """An MQTT connection that publishes at QoS 1 (the pipeline's durable subscriber)."""

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None: ...


class MqttAlerts:
    """An alert channel publishing each change on its tenant's alert topic."""

    def __init__(self, connection: Publisher) -> None:
        self._connection = connection

    def send(self, changes: Sequence[StatusChange]) -> None:
        for change in changes:
            self._connection.publish(alerts_topic(change.tenant), encode_status_change(change))
