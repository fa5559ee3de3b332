"""Exceptions of :mod:`storage` (their place in the tree: :mod:`metrology.errors`)."""

from metrology.errors import CalstreamError


class StorageError(CalstreamError):
    """Root of every error raised by :mod:`storage`; the database error is chained as the cause."""


class SchemaVersionError(StorageError):
    """The database carries a schema version this code does not know."""


class LocalQueueError(StorageError):
    """A local queue's file cannot be opened, written or read (path and cause given)."""


class LocalQueueFull(LocalQueueError):
    """The entry does not fit under the queue's ``max_bytes``: refused, nothing dropped."""


class LocalQueueVersionError(LocalQueueError):
    """The file has another layout, or entries of another format: refused, left untouched."""
