"""The InfluxDB series sink (line protocol; docs/influxdb.md is the reference).

``InfluxSink.from_url("influxdb://user:password@host:8086/calstream")`` (v1 ``/write``) or
``InfluxSink.from_url("influxdb2://host:8086?org=..&bucket=..&token=..")`` (v2 write API through
influxdb-client) gives a :class:`storage.contract.SeriesSink`. Errors are
:class:`storage.errors.StorageError` (and ``ValueError`` for a malformed store URL).
"""

from storage.influx.sink import InfluxSink
from storage.influx.target import InfluxTarget, WritePolicy, parse_store_url

__all__ = ["InfluxSink", "InfluxTarget", "WritePolicy", "parse_store_url"]
