"""Storage: the embedded SQLite store (default), and InfluxDB series beside a SQL registry.

``open_store(store_url, registry_url)`` opens the store one setting names (``sqlite:///path``,
``influxdb://...``, ``influxdb2://...``; ``storage.select``). ``SqliteStore(path)`` creates its
schema on first use; ``write(OutputBatch(...))`` (:class:`metrology.batch.OutputBatch`) commits
one pipeline batch in one transaction and returns a :class:`WriteResult` with exact counts.
``SqlRegistry(url)`` is the registry on SQLite or PostgreSQL (SQLAlchemy Core, Alembic
migrations); ``CompositeStore(series, registry)`` is the production store.
"""

from storage.batch import WriteResult
from storage.composite import CompositeStore
from storage.errors import SchemaVersionError, StorageError
from storage.queries import NO_DATA, STATUS_KEYS
from storage.registry import SqlRegistry
from storage.schema import SCHEMA_VERSION
from storage.select import open_store
from storage.sqlite_store import SqliteStore

__all__ = [
    "NO_DATA",
    "SCHEMA_VERSION",
    "STATUS_KEYS",
    "CompositeStore",
    "SchemaVersionError",
    "SqlRegistry",
    "SqliteStore",
    "StorageError",
    "WriteResult",
    "open_store",
]
