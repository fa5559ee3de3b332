"""Panel targets (Grafana "queries") for the two datasources the SDK has no types for.

``grafana-foundation-sdk`` types the core datasources only; a datasource plugin's query is any
:class:`~grafana_foundation_sdk.cog.variants.Dataquery` that serialises itself with
``to_json()``. The field names are the plugins' own:

- ``frser-sqlite-datasource``: ``rawQueryText`` (what the user wrote; the plugin's frontend
  interpolates template variables into ``queryText``), ``queryType`` (``table`` or
  ``time series``: long-to-wide conversion), ``timeColumns`` (columns read as epoch seconds
  or RFC 3339 and returned as times).
- ``influxdb`` (InfluxQL): ``query`` with ``rawQuery: true``, ``resultFormat``
  (``time_series`` or ``table``), ``alias`` (legend pattern).
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants

from dashboards.datasources import Datasource
from dashboards.model import Query, ResultFormat

SQLITE_TIME_COLUMNS = ("time",)
"""Columns the SQLite plugin converts to times: every query names its time column ``time``."""


class SqliteTarget(cogvariants.Dataquery):
    def __init__(self, datasource: Datasource, ref_id: str, query: Query) -> None:
        self.datasource = datasource
        self.ref_id = ref_id
        self.query = query

    def to_json(self) -> dict[str, Any]:
        time_series = self.query.format is ResultFormat.TIME_SERIES
        return {
            "datasource": self.datasource.ref().to_json(),
            "queryText": self.query.text,
            "queryType": "time series" if time_series else "table",
            "rawQueryText": self.query.text,
            "refId": self.ref_id,
            "timeColumns": list(SQLITE_TIME_COLUMNS),
        }


class InfluxQLTarget(cogvariants.Dataquery):
    def __init__(self, datasource: Datasource, ref_id: str, query: Query) -> None:
        self.datasource = datasource
        self.ref_id = ref_id
        self.query = query

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "datasource": self.datasource.ref().to_json(),
            "query": self.query.text,
            "rawQuery": True,
            "refId": self.ref_id,
            "resultFormat": self.query.format.value,
        }
        if self.query.alias:
            document["alias"] = self.query.alias
        return document


class Target(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builder the SDK's ``with_target`` accepts, around an already made target."""

    def __init__(self, target: cogvariants.Dataquery) -> None:
        self._target = target

    def build(self) -> cogvariants.Dataquery:
        return self._target
