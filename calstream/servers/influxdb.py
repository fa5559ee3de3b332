"""Start Debian's InfluxDB 1.x (``influxd``) and VictoriaMetrics locally (benchmarks and tests).

Each server runs on a free port of 127.0.0.1 with every file in the given folder; the listeners
a test does not use are disabled or moved to free ports, so several instances (and a system
service on the default ports) never collide. ``make test-servers`` installs both packages.
"""

from __future__ import annotations

import base64
import urllib.parse
import urllib.request
from pathlib import Path

from calstream.servers.base import HOST, HttpServer, find_binary, free_port


def influxd_binary() -> str:
    """Path of Debian's influxd (InfluxDB 1.x); raises with what to do when it is missing."""
    return find_binary("influxd", "influxdb")


def victoria_metrics_binary() -> str:
    """Path of Debian's victoria-metrics; raises with what to do when it is missing."""
    return find_binary("victoria-metrics", "victoria-metrics")


def influxd_config(folder: Path, http_port: int, rpc_port: int, auth: bool) -> str:
    """An influxd 1.x configuration with every file in ``folder`` and only 127.0.0.1 listeners."""
    return f"""\
reporting-disabled = true
bind-address = "{HOST}:{rpc_port}"

[meta]
  dir = "{folder}/meta"
  logging-enabled = false

[data]
  dir = "{folder}/data"
  wal-dir = "{folder}/wal"
  wal-fsync-delay = "0s"
  query-log-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[http]
  enabled = true
  bind-address = "{HOST}:{http_port}"
  auth-enabled = {"true" if auth else "false"}
  log-enabled = false
  pprof-enabled = false
  flux-enabled = false

[logging]
  level = "warn"
"""


class LocalInfluxDB(HttpServer):
    """Debian's influxd (1.x: ``/write`` and InfluxQL ``/query``, no ``/api/v2``).

    With ``username`` and ``password``, authentication is on and that user is created as the
    admin on first start (InfluxDB allows creating the first admin without credentials).
    """

    name = "influxd"
    ready_path = "/ping"

    def __init__(
        self,
        folder: Path,
        port: int | None = None,
        database: str = "calstream",
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        super().__init__(folder, port)
        self.database = database
        self.username = username
        self.password = password
        self.rpc_port = free_port()
        self.config = folder / "influxdb.conf"
        self.config.write_text(
            influxd_config(folder, self.port, self.rpc_port, auth=username is not None)
        )

    def command(self) -> list[str]:
        return [influxd_binary(), "run", "-config", str(self.config)]

    @property
    def store_url(self) -> str:
        """The ``influxdb://`` store URL of this server's database (v1 API)."""
        credentials = ""
        if self.username is not None:
            user = urllib.parse.quote(self.username, safe="")
            password = urllib.parse.quote(self.password or "", safe="")
            credentials = f"{user}:{password}@"
        return f"influxdb://{credentials}{self.host}:{self.port}/{self.database}"

    def query(self, influxql: str, database: str | None = None) -> dict[str, object]:
        """Run InfluxQL (POST /query) as the admin; the decoded JSON answer."""
        import json

        params = {"q": influxql, "db": database or self.database}
        request = urllib.request.Request(
            f"{self.base_url}/query",
            data=urllib.parse.urlencode(params).encode(),
            method="POST",
        )
        if self.username is not None:
            token = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def _after_start(self) -> None:
        if self.username is not None and not (self.folder / ".admin-created").exists():
            import json

            statement = (
                f"CREATE USER \"{self.username}\" WITH PASSWORD '{self.password or ''}' "
                "WITH ALL PRIVILEGES"
            )
            request = urllib.request.Request(
                f"{self.base_url}/query",
                data=urllib.parse.urlencode({"q": statement}).encode(),
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                json.loads(response.read())
            (self.folder / ".admin-created").touch()
        self.query(f'CREATE DATABASE "{self.database}"')


class LocalVictoriaMetrics(HttpServer):
    """Debian's victoria-metrics: accepts the InfluxDB v1 and v2 write APIs, queried in PromQL.

    Retention is 100 years (the default, one month, silently drops the simulator's older
    samples) and samples of one series with the same millisecond are de-duplicated.
    """

    name = "victoria-metrics"
    ready_path = "/health"

    def __init__(self, folder: Path, port: int | None = None, bucket: str = "calstream") -> None:
        super().__init__(folder, port)
        self.bucket = bucket

    def command(self) -> list[str]:
        return [
            victoria_metrics_binary(),
            f"-storageDataPath={self.folder / 'data'}",
            f"-httpListenAddr={self.host}:{self.port}",
            "-retentionPeriod=100y",
            "-dedup.minScrapeInterval=1ms",
            "-loggerLevel=ERROR",
        ]

    @property
    def store_url(self) -> str:
        """The ``influxdb2://`` store URL (v2 write API) reading back through the export API."""
        return (
            f"influxdb2://{self.host}:{self.port}?org=calstream&bucket={self.bucket}"
            "&token=unused&reads=victoriametrics"
        )
