"""InfluxDB 2.x / 3.x: no such server can be started by a fixture (not packaged by Debian), so
these run against one named by ``CALSTREAM_TEST_INFLUXDB2`` and are skipped, saying so, otherwise.

``CALSTREAM_TEST_INFLUXDB2=influxdb2://host:8086?org=ORG&bucket=BUCKET&database=DB&token=TOKEN``:
a bucket the token may write and, for the InfluxQL reads, a DBRP mapping of ``database`` to it
(``influx v1 dbrp create``; ``deploy/influxdb/init-dbrp.sh`` does it in the compose stack).
The test writes one simulated day of the example fleet (its window ends at the fleet's
``as_of``) and counts the readings of that window: a second run overwrites the same points.
"""

from __future__ import annotations

import os

import pytest

from metrology.fleet import Fleet
from storage.influx import InfluxSink
from storage.influx.schema import READING
from tests.storage.test_influx_write import simulate

URL = os.environ.get("CALSTREAM_TEST_INFLUXDB2", "")

pytestmark = pytest.mark.skipif(
    not URL,
    reason="CALSTREAM_TEST_INFLUXDB2 is not set: no InfluxDB 2.x/3.x server to test against "
    "(set it to an influxdb2:// store URL with org, bucket, database and token)",
)


def test_batches_through_the_v2_api_are_counted_back_exactly_through_influxql(
    fleet: Fleet,
) -> None:
    simulated = simulate(fleet, days=1.0, seed=3)
    times = [r.ts for b in simulated.batches for r, _ in b.readings]
    window = (
        f'SELECT count("seq") FROM "{READING}" '
        f"WHERE time >= {round(min(times) * 1e9)} AND time <= {round(max(times) * 1e9)}"
    )

    def counted(sink: InfluxSink) -> int:
        return sum(int(row[1]) for s in sink.query(window) for row in s.get("values") or [])

    with InfluxSink.from_url(URL, fleet, retry_s=10) as sink:
        assert sink.target.api == "v2"
        written = sum(sink.write_series(b) for b in simulated.batches)
        assert written > simulated.readings
        assert counted(sink) == simulated.readings
        for batch in simulated.batches[:5]:  # re-delivered: the points overwrite themselves
            sink.write_series(batch)
        assert counted(sink) == simulated.readings
