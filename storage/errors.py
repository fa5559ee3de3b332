"""Exceptions of :mod:`storage`.

::

    StorageError             a store cannot be opened, written or read (path and cause given)
    └── SchemaVersionError   the database has another schema version, newer or older (refused,
                             untouched)
"""


class StorageError(Exception):
    """Root of every error raised by :mod:`storage`; the database error is chained as the cause."""


class SchemaVersionError(StorageError):
    """The database carries a schema version this code does not know."""
