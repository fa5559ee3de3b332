"""Exceptions of :mod:`storage` (their place in the tree: :mod:`metrology.errors`)."""

from metrology.errors import CalstreamError


class StorageError(CalstreamError):
    """Root of every error raised by :mod:`storage`; the database error is chained as the cause."""


class SchemaVersionError(StorageError):
    """The database carries a schema version this code does not know."""
