"""The Grafana datasources the dashboards name: uids fixed here and in provisioning.

``deploy/grafana/provisioning/datasources/*.yaml`` creates them with the same uids (a test
checks it), so dashboards exported or pushed find their data without editing.
"""

from __future__ import annotations

from dataclasses import dataclass

from grafana_foundation_sdk.models.common import DataSourceRef


@dataclass(frozen=True, slots=True)
class Datasource:
    """A provisioned datasource: Grafana plugin type and the uid dashboards refer to."""

    type: str
    uid: str
    name: str

    def ref(self) -> DataSourceRef:
        return DataSourceRef(type_val=self.type, uid=self.uid)


SQLITE = Datasource(type="frser-sqlite-datasource", uid="calstream-sqlite", name="calstream SQLite")
"""The embedded store, read by the ``frser-sqlite-datasource`` plugin."""

INFLUXDB = Datasource(type="influxdb", uid="calstream-influxdb", name="calstream InfluxDB")
"""InfluxDB (1.x, or 2.x/3.x through a DBRP mapping), queried in InfluxQL."""
