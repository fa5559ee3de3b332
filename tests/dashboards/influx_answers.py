"""A real influxd holding the simulated run, and its answers read as Grafana reads them."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from calstream.servers.influxdb import LocalInfluxDB


@dataclass(frozen=True)
class InfluxRun:
    """The simulated run written to a real influxd through calstream's InfluxDB sink."""

    server: LocalInfluxDB
    points: int

    def query(self, influxql: str) -> dict[str, Any]:
        """``GET /query`` as Grafana's InfluxDB datasource sends it (``epoch=ms``)."""
        params = urllib.parse.urlencode({"db": self.server.database, "q": influxql, "epoch": "ms"})
        with urllib.request.urlopen(f"{self.server.base_url}/query?{params}", timeout=60) as r:
            answer: dict[str, Any] = json.loads(r.read())
        (result,) = answer["results"]
        if "error" in result:
            raise AssertionError(f"{result['error']} in {influxql}")
        return result  # type: ignore[no-any-return]


def as_table(result: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """An InfluxQL answer as Grafana's table format shows it: the ``GROUP BY`` tags as columns
    after ``time``, one row per point of every series."""
    series = result.get("series", [])
    if not series:
        return [], []
    tag_keys = sorted(series[0].get("tags", {}))
    first = series[0]["columns"]
    columns = [first[0], *tag_keys, *first[1:]]
    rows = []
    for one in series:
        tags = one.get("tags", {})
        assert one["columns"] == first
        for values in one["values"]:
            rows.append([values[0], *(tags[k] for k in tag_keys), *values[1:]])
    return columns, rows
