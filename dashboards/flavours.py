"""The two flavours of every dashboard: the datasource and the text of each query.

``sqlite`` reads the embedded store through ``frser-sqlite-datasource``; ``influxdb`` reads the
production series in InfluxQL. Both map the same query keys (a test checks it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from grafana_foundation_sdk.cog import variants as cogvariants

from dashboards import queries_influxql, queries_sqlite
from dashboards.datasources import INFLUXDB, SQLITE, Datasource
from dashboards.model import Query
from dashboards.targets import InfluxQLTarget, SqliteTarget


@dataclass(frozen=True, slots=True)
class Flavour:
    name: str
    datasource: Datasource
    queries: Mapping[str, tuple[Query, ...]]
    variables: Mapping[str, str]
    """Variable query text by ``<dashboard key>.<variable name>``."""
    target: Callable[[Datasource, str, Query], cogvariants.Dataquery]

    def uid(self, dashboard_key: str) -> str:
        """Fixed dashboard uid (Grafana allows 40 characters)."""
        return f"calstream-{dashboard_key}-{self.name}"


SQLITE_FLAVOUR = Flavour(
    "sqlite", SQLITE, queries_sqlite.QUERIES, queries_sqlite.VARIABLES, SqliteTarget
)
INFLUXDB_FLAVOUR = Flavour(
    "influxdb", INFLUXDB, queries_influxql.QUERIES, queries_influxql.VARIABLES, InfluxQLTarget
)

FLAVOURS: dict[str, Flavour] = {f.name: f for f in (SQLITE_FLAVOUR, INFLUXDB_FLAVOUR)}
