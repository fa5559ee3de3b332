"""Storage: the embedded SQLite store (default), and InfluxDB series beside a SQL registry.

``open_store(store_url, registry_url)`` opens the store one setting names (``sqlite:///path``,
``influxdb://...``, ``influxdb2://...``; ``storage.select``). ``SqliteStore(path)`` creates its
schema on first use; ``write(OutputBatch(...))`` (:class:`metrology.batch.OutputBatch`) commits
one pipeline batch in one transaction and returns a :class:`WriteResult` with exact counts.
``SqlRegistry(url)`` is the registry on SQLite or PostgreSQL (SQLAlchemy Core, Alembic
migrations); ``CompositeStore(series, registry)`` is the production store.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storage.batch import WriteResult
    from storage.composite import CompositeStore
    from storage.errors import SchemaVersionError, StorageError
    from storage.registry import SqlRegistry
    from storage.schema import NO_DATA, SCHEMA_VERSION, STATUS_KEYS
    from storage.select import open_store
    from storage.sqlite_store import SqliteStore

# Imported on first use: a process that needs one small module of this package (a gateway's
# spool needs storage.local_queue) does not load SQLAlchemy, Alembic and every store.
_PUBLIC = {
    "NO_DATA": "storage.schema",
    "SCHEMA_VERSION": "storage.schema",
    "STATUS_KEYS": "storage.schema",
    "CompositeStore": "storage.composite",
    "SchemaVersionError": "storage.errors",
    "SqlRegistry": "storage.registry",
    "SqliteStore": "storage.sqlite_store",
    "StorageError": "storage.errors",
    "WriteResult": "storage.batch",
    "open_store": "storage.select",
}
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


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'storage' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
