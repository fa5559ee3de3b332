"""Exceptions of :mod:`stream_processors` (their place in the tree: :mod:`metrology.errors`)."""

from metrology.errors import CalstreamError


class ProcessingError(CalstreamError):
    """Root of every error raised by :mod:`stream_processors`."""


class StateCodecError(ProcessingError, ValueError):
    """A document is not a state, reading or calibration this codec can read (says why)."""
