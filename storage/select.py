"""Choosing the store by one setting: ``open_store(store_url, registry_url)``.

::

    sqlite:///path/calstream.sqlite        the embedded store (SqliteStore): series and registry
                                           in one file (sqlite:////absolute/path: four slashes)
    influxdb://[user:pw@]host:8086/db      InfluxDB 1.x (/write), through CompositeStore
    influxdb2://host:8086?org=..&bucket=..&token=..
                                           InfluxDB 2.x/3.x, VictoriaMetrics (v2 write API)

For the InfluxDB forms the registry (instruments, calibrations, latest states, alerts, dead
letters) is ``registry_url``: ``postgresql://user@host:5432/db`` in production, or
``sqlite:///path`` (default ``<work_dir>/registry.sqlite``). The embedded store keeps its
registry in its own file, so a ``registry_url`` beside a ``sqlite:///`` store is refused.
"""

from __future__ import annotations

from pathlib import Path

from storage.contract import Store

SQLITE_PREFIX = "sqlite:///"
INFLUX_SCHEMES = ("influxdb", "influxdbs", "influxdb2", "influxdb2s")
REGISTRY_FILE = "registry.sqlite"

STORE_FORMS = (
    "sqlite:///path (embedded), influxdb://[user:password@]host:8086/database or "
    "influxdb2://host:8086?org=ORG&bucket=BUCKET&token=TOKEN"
)
REGISTRY_FORMS = "postgresql://user[:password]@host:5432/database or sqlite:///path"


def store_kind(store_url: str) -> str:
    """``"sqlite"`` or ``"influxdb"``; ValueError naming the accepted forms otherwise."""
    scheme, sep, _ = store_url.partition("://")
    if store_url.startswith(SQLITE_PREFIX) and len(store_url) > len(SQLITE_PREFIX):
        return "sqlite"
    if sep and scheme.lower() in INFLUX_SCHEMES:
        from storage.influx import parse_store_url

        parse_store_url(store_url)  # ValueError naming what is wrong
        return "influxdb"
    raise ValueError(f"store {store_url!r} is not one of: {STORE_FORMS}")


def sqlite_path(store_url: str) -> Path:
    """The file of a ``sqlite:///path`` URL."""
    if store_kind(store_url) != "sqlite":
        raise ValueError(f"store {store_url!r} is not a sqlite:///path URL")
    return Path(store_url[len(SQLITE_PREFIX) :])


def describe_store(store_url: str) -> str:
    """``store_url`` for logs and messages: no password, no token."""
    if store_kind(store_url) == "sqlite":
        return store_url
    from storage.influx import parse_store_url

    return f"InfluxDB {parse_store_url(store_url).redacted_url}"


def check_registry_url(registry_url: str) -> str:
    """``registry_url`` if it is a PostgreSQL or SQLite URL; ValueError naming the forms."""
    scheme = registry_url.partition("://")[0].lower()
    backend = scheme.split("+")[0]
    if backend in ("postgresql", "postgres") or (
        registry_url.startswith(SQLITE_PREFIX) and len(registry_url) > len(SQLITE_PREFIX)
    ):
        return registry_url
    raise ValueError(f"registry {registry_url!r} is not one of: {REGISTRY_FORMS}")


def open_store(
    store_url: str, registry_url: str | None = None, *, work_dir: Path = Path("calstream-work")
) -> Store:
    """The store ``store_url`` names (see the module docstring), opened and migrated."""
    if store_kind(store_url) == "sqlite":
        if registry_url is not None:
            raise ValueError(
                f"registry {registry_url!r} is for InfluxDB stores; the embedded store "
                f"{store_url!r} keeps its registry in its own file (unset CALSTREAM_REGISTRY)"
            )
        from storage.sqlite_store import SqliteStore

        return SqliteStore(sqlite_path(store_url))
    from storage.composite import CompositeStore
    from storage.influx import InfluxSink
    from storage.registry import SqlRegistry

    registry = SqlRegistry(
        check_registry_url(registry_url)
        if registry_url is not None
        else f"{SQLITE_PREFIX}{work_dir / REGISTRY_FILE}"
    )
    try:
        series = InfluxSink.from_url(store_url)
    except BaseException:
        registry.close()
        raise
    return CompositeStore(series, registry)
