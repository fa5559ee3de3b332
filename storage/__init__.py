"""Storage sinks and the registry: the embedded SQLite store (default).

``SqliteStore(path)`` creates the schema on first use; ``write(StoreBatch(...))`` commits one
pipeline batch in one transaction and returns a :class:`WriteResult` with exact counts.
"""

from storage.batch import StoreBatch, WriteResult
from storage.errors import SchemaVersionError, StorageError
from storage.queries import NO_DATA, STATUS_KEYS
from storage.schema import SCHEMA_VERSION
from storage.sqlite_store import SqliteStore

__all__ = [
    "NO_DATA",
    "SCHEMA_VERSION",
    "STATUS_KEYS",
    "SchemaVersionError",
    "SqliteStore",
    "StorageError",
    "StoreBatch",
    "WriteResult",
]
