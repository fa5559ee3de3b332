"""Exceptions of the edge simulator.

::

    EdgeSimError
    └── PublishError           the broker could not be reached or did not take a message
        ├── ConnectError       no CONNACK within the timeout, or the broker refused the connection
        └── BackpressureTimeout   the in-flight window stayed full longer than the timeout
"""


class EdgeSimError(Exception):
    """Root of every error raised by :mod:`edge_sim`."""


class PublishError(EdgeSimError):
    """A message could not be handed to the broker."""


class ConnectError(PublishError):
    """The connection to the broker could not be established."""


class BackpressureTimeout(PublishError):
    """The broker acknowledged nothing for too long while the in-flight window was full."""
