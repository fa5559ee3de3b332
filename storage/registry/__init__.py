"""The registry through SQLAlchemy Core, one code path for SQLite and PostgreSQL.

- :mod:`storage.registry.tables`: the tables (one SQLAlchemy ``MetaData``);
- :mod:`storage.registry.migrate`: Alembic migrations run from code (``migrations/``);
- :mod:`storage.registry.writes` and :mod:`storage.registry.queries`: registration, latest
  states, alerts, dead letters, and the status queries;
- :class:`SqlRegistry`: all of it on a database URL (``sqlite:///...``, ``postgresql://...``).

The embedded :class:`~storage.sqlite_store.SqliteStore` keeps these tables in its own file
and uses the same migrations, registration and queries on its connection.
"""

from storage.registry.sql_registry import SqlRegistry, engine_url
from storage.registry.tables import REGISTRY_TABLES, metadata

__all__ = ["REGISTRY_TABLES", "SqlRegistry", "engine_url", "metadata"]
