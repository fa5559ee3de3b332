"""The registry through SQLAlchemy Core, one code path for SQLite and PostgreSQL.

- :mod:`storage.registry.tables`: the tables (one SQLAlchemy ``MetaData``);
- :mod:`storage.registry.migrate`: Alembic migrations run from code (``migrations/``);
- :mod:`storage.registry.operations`: the registry operations (tenants, sites, gateways,
  instruments, certificates, contracts, tokens), each one scoped, audited transaction, and the
  fleet file's registration through them; their inputs in :mod:`storage.registry.documents`,
  their results in :mod:`storage.registry.records`;
- :mod:`storage.registry.audit` (the audit trail and the change log) and
  :mod:`storage.registry.tokens` (API tokens);
- :mod:`storage.registry.writes` and :mod:`storage.registry.queries`: latest states, alerts,
  dead letters, and the status queries; :mod:`storage.registry.scoped`: the reads confined to
  a caller's scope;
- :class:`SqlRegistry`: all of it on a database URL (``sqlite:///...``, ``postgresql://...``).

The embedded :class:`~storage.sqlite_store.SqliteStore` keeps these tables in its own file
and uses the same migrations, operations and queries on its connection.
"""

from storage.registry.operations import RegistryOperations
from storage.registry.sql_registry import SqlRegistry, engine_url
from storage.registry.tables import REGISTRY_TABLES, metadata

__all__ = ["REGISTRY_TABLES", "RegistryOperations", "SqlRegistry", "engine_url", "metadata"]
