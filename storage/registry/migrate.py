"""Registry migrations (Alembic), run from code: no ``alembic.ini`` is needed at runtime.

:func:`upgrade` brings a database to the newest revision on an open SQLAlchemy connection
(:class:`~storage.registry.SqlRegistry` and the embedded store call it on open);
:func:`schema_differences` is Alembic's autogenerate comparison of a migrated database with the
table definitions (empty when they match, as ``alembic check`` would say).

Writing a new revision (autogenerate compares a database at head with the tables)::

    from alembic import command
    command.revision(alembic_config(url="sqlite:///scratch.sqlite"), "what", autogenerate=True)
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, inspect

from storage.errors import SchemaVersionError
from storage.registry.tables import metadata

VERSION_TABLE = "alembic_version"


def migrations_folder() -> str:
    """The folder of ``env.py`` and ``versions/``, found from the installed package."""
    return str(resources.files("storage.registry") / "migrations")


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """An Alembic Config built in code, for a URL or an open connection."""
    config = Config()
    config.set_main_option("script_location", migrations_folder())
    if url is not None:
        # ConfigParser interpolation: a literal '%' in a URL (an encoded password) is doubled.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest revision these migrations know."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the registry migrations have no revision"
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision a database is at (None: never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection) -> str:
    """Migrate to the newest revision on ``connection`` (caller commits); returns it.

    A database at a revision these migrations do not know (written by a newer calstream) is
    refused with :class:`SchemaVersionError` and left untouched.
    """
    current = current_revision(connection)
    head = head_revision()
    if current == head:
        return head
    if current is not None:
        try:
            ScriptDirectory.from_config(alembic_config()).get_revision(current)
        except CommandError as exc:
            raise SchemaVersionError(
                f"registry revision {current!r} is unknown to this calstream (head {head!r}): "
                "the database was migrated by a newer calstream; use that version"
            ) from exc
    command.upgrade(alembic_config(connection=connection), "head")
    return head


def schema_differences(connection: Connection) -> list[Any]:
    """Differences between the database and the table definitions (autogenerate's list)."""
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "include_name": lambda name, type_, parents: (
                type_ != "table" or name in metadata.tables
            ),
        },
    )
    return list(compare_metadata(context, metadata))


def registry_tables_present(connection: Connection) -> set[str]:
    """Which of the registry's tables exist in the database."""
    return set(inspect(connection).get_table_names()) & set(metadata.tables)
