"""Reading the series back: InfluxQL over ``/query``, or VictoriaMetrics' export API.

- :class:`InfluxQLReader`: ``GET /query?db=&q=&epoch=ns`` (InfluxDB 1.x; 2.x and 3.x through
  the bucket's DBRP mapping, authenticated by token). What the dashboards use, too. With
  ``per_tenant``, the counts read every tenant's database (``SHOW DATABASES``).
- :class:`VictoriaMetricsReader`: VictoriaMetrics speaks PromQL, not InfluxQL, and keeps only
  numeric fields, as metrics ``{measurement}_{field}``; ``/api/v1/export`` returns every raw
  sample, after ``/internal/force_flush`` makes the last writes visible.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx

from metrology.health import Status
from storage.errors import StorageError
from storage.influx.schema import HEALTH, READING, STATUS_OF_SEVERITY
from storage.influx.target import InfluxTarget

LatestStatus = tuple[str, str, str, Status, float]
"""(instrument, tenant, site, status, evaluated_at in epoch seconds)."""


def _client(target: InfluxTarget) -> httpx.Client:
    headers = {}
    auth = None
    if target.api == "v1" and target.username is not None:
        auth = httpx.BasicAuth(target.username, target.password or "")
    elif target.api == "v2" and target.token:
        headers["Authorization"] = f"Token {target.token}"
    return httpx.Client(
        base_url=target.base_url, auth=auth, headers=headers, timeout=target.policy.timeout_s
    )


def _quote(identifier: str) -> str:
    return '"' + identifier.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxQLReader:
    """InfluxQL queries of the target's database."""

    def __init__(self, target: InfluxTarget) -> None:
        self.target = target
        self._client = _client(target)

    def measurement(self, name: str) -> str:
        """``"rp"."name"`` when the store URL names a retention policy, else ``"name"``."""
        rp = self.target.retention_policy
        return f"{_quote(rp)}.{_quote(name)}" if rp else _quote(name)

    def query(self, influxql: str, database: str | None = None) -> list[dict[str, Any]]:
        """The ``series`` of the first statement's result (``[]`` when it has none), against
        ``database`` (the target's by default)."""
        db = database or self.target.database
        try:
            response = self._client.get("/query", params={"db": db, "q": influxql, "epoch": "ns"})
        except httpx.TransportError as exc:
            raise StorageError(
                f"InfluxDB at {self.target.redacted_url} cannot be queried: {exc}"
            ) from exc
        if response.status_code != 200:
            raise StorageError(
                f"InfluxDB at {self.target.redacted_url} refused the query {influxql!r}: "
                f"HTTP {response.status_code}: {response.text.strip()[:500]}"
            )
        results = response.json().get("results") or [{}]
        error = results[0].get("error")
        if error:
            raise StorageError(f"InfluxQL {influxql!r} failed: {error}")
        return list(results[0].get("series") or [])

    def databases(self) -> list[str]:
        """The databases the series are in: the target's, or with ``per_tenant`` those of
        ``<database>`` and every ``<database>_<tenant>`` the server has."""
        base = self.target.database
        if not self.target.per_tenant:
            return [base]
        names = [row[0] for s in self.query("SHOW DATABASES") for row in s.get("values") or []]
        return sorted(n for n in names if n == base or n.startswith(f"{base}_"))

    def reading_count(self) -> int:
        total = 0
        for database in self.databases():
            series = self.query(f'SELECT count("seq") FROM {self.measurement(READING)}', database)
            total += sum(int(row[1]) for s in series for row in s.get("values") or [])
        return total

    def latest_statuses(self) -> list[LatestStatus]:
        statement = (
            f'SELECT last("status") FROM {self.measurement(HEALTH)} '
            'GROUP BY "tenant", "site", "instrument"'
        )
        series = [s for database in self.databases() for s in self.query(statement, database)]
        latest = []
        for s in series:
            tags = s.get("tags") or {}
            for ts, status in s.get("values") or []:
                if status in Status.__members__:
                    latest.append(
                        (tags["instrument"], tags["tenant"], tags["site"], Status(status), ts / 1e9)
                    )
        return latest

    def close(self) -> None:
        self._client.close()


class VictoriaMetricsReader:
    """Raw samples through ``/api/v1/export``. VictoriaMetrics ignores the bucket."""

    def __init__(self, target: InfluxTarget) -> None:
        self.target = target
        self._client = _client(target)
        self._reads = itertools.count(1)

    def _get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        try:
            response = self._client.get(path, params=params)
        except httpx.TransportError as exc:
            raise StorageError(
                f"VictoriaMetrics at {self.target.base_url} cannot be read: {exc}"
            ) from exc
        if response.status_code != 200:
            raise StorageError(
                f"VictoriaMetrics at {self.target.base_url}{path}: HTTP {response.status_code}: "
                f"{response.text.strip()[:500]}"
            )
        return response

    def flush(self) -> None:
        """Make samples written so far visible to reads (they are buffered about a second)."""
        self._get("/internal/force_flush")

    def export(self, selector: str) -> Iterator[dict[str, Any]]:
        """Every series matching ``selector``: ``{"metric": labels, "values", "timestamps"}``."""
        self.flush()
        # VictoriaMetrics (1.79 measured) keeps a series lookup that found nothing cached for
        # seconds after the series were created (the sink's first read, before any write, is
        # one): a label filter that matches every series but differs on every read keeps each
        # read off that cache.
        nonce = f'calstream_read!="{os.getpid()}-{next(self._reads)}"'
        if selector.endswith("}"):
            selector = selector[:-1] + ("," if selector[-2] != "{" else "") + nonce + "}"
        else:
            selector = f"{selector}{{{nonce}}}"
        response = self._get("/api/v1/export", {"match[]": selector})
        for text in response.text.splitlines():
            if text.strip():
                yield json.loads(text)

    def reading_count(self) -> int:
        """Distinct (series, millisecond) samples of ``reading_seq``: each reading once."""
        return sum(len(set(s["timestamps"])) for s in self.export(f"{READING}_seq"))

    def latest_statuses(self) -> list[LatestStatus]:
        latest = []
        for s in self.export(f"{HEALTH}_severity"):
            labels, values, stamps = s["metric"], s["values"], s["timestamps"]
            if not stamps or not {"instrument", "tenant", "site"} <= labels.keys():
                continue
            last = max(range(len(stamps)), key=stamps.__getitem__)
            status = STATUS_OF_SEVERITY.get(int(values[last]))
            if status is not None:
                latest.append(
                    (labels["instrument"], labels["tenant"], labels["site"], status,
                     stamps[last] / 1e3)
                )  # fmt: skip
        return latest

    def close(self) -> None:
        self._client.close()
