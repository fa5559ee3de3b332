"""Exceptions of the ingest package (their place in the tree: :mod:`metrology.errors`).

Bad *input* never raises: it becomes a :class:`metrology.wire.Rejection` and a dead letter.
"""

from metrology.errors import CalstreamError


class IngestError(CalstreamError):
    """Root of ingest errors."""


class BrokerUnavailable(IngestError):
    """The MQTT broker cannot be reached, or refused the connection."""


class SinkUnavailable(IngestError):
    """The forwarder's sink cannot take records now (nothing was acknowledged; retry later)."""


class KafkaUnavailable(SinkUnavailable):
    """No Kafka broker answered at the bootstrap address (the message names it)."""
