"""Alembic environment of the registry: run by :mod:`storage.registry.migrate`, no alembic.ini.

The caller hands over an open SQLAlchemy connection (``config.attributes["connection"]``); with
only a URL (``sqlalchemy.url``, for the ``alembic`` command line) an engine is made here. Only
the registry's own tables are compared and migrated: the embedded store keeps its series tables
(``readings``, ``residuals``, views) in the same SQLite file, outside the migrations.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine

from storage.registry.tables import metadata

config = context.config


def _include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    if type_ == "table":
        return name in metadata.tables
    return True


def _run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_name=_include_name,
        # SQLite alters tables by copying them (ALTER TABLE is limited there).
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("the registry migrations need a connection or a sqlalchemy.url")
    engine = create_engine(url)
    try:
        with engine.begin() as opened:
            _run(opened)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("the registry migrations run against a database (online mode only)")
run_migrations_online()
