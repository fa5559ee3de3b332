"""Exceptions of the ingest package.

::

    IngestError
    └── BrokerUnavailable     the MQTT broker cannot be reached or refused the connection

Bad *input* never raises: it becomes a :class:`metrology.wire.Rejection` and a dead letter.
"""


class IngestError(Exception):
    """Root of ingest errors."""


class BrokerUnavailable(IngestError):
    """The MQTT broker cannot be reached, or refused the connection."""
