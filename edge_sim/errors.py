"""Exceptions of the edge simulator (their place in the tree: :mod:`metrology.errors`)."""

from metrology.errors import CalstreamError


class EdgeSimError(CalstreamError):
    """Root of every error raised by :mod:`edge_sim`."""


class PublishError(EdgeSimError):
    """A message could not be handed to the broker."""


class ConnectError(PublishError):
    """The connection to the broker could not be established."""


class BackpressureTimeout(PublishError):
    """The broker acknowledged nothing for too long while the in-flight window was full."""


class SpoolError(PublishError):
    """The spool file cannot be opened, written or read."""


class SpoolFull(SpoolError):
    """The message does not fit under the spool's ``max_bytes``: refused, nothing dropped."""
