"""Outbound notifications: where alerts leave the platform, one module per kind of channel.

- :mod:`calstream.notify.mqtt`: status changes on the tenant's MQTT alert topic.

A channel takes the status changes a committed batch raised (:class:`AlertChannel`); the
pipeline calls it only after the batch is durable and acknowledged.
"""

from calstream.notify.channel import AlertChannel

__all__ = ["AlertChannel"]
