"""The v2 write API (influxdb-client) into a real VictoriaMetrics, read back through its export
API: exact counts, re-delivery, numeric content, and the counts' seed after a restart.

VictoriaMetrics shows new series to reads eventually: even after ``/internal/force_flush`` a
series created moments ago was missing from exports for a few seconds on the loaded test
machine. Reads of fresh series therefore wait (bounded) until they reach the exact expected
value; the assertions stay exact.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from calstream.servers.influxdb import LocalVictoriaMetrics
from metrology.batch import OutputBatch
from metrology.fleet import Fleet
from metrology.health import Status
from storage.errors import StorageError
from storage.influx import InfluxSink
from storage.influx.reads import VictoriaMetricsReader
from storage.influx.target import parse_store_url
from tests.storage.test_influx_write import Simulated, simulate

_SIMULATED: dict[str, Simulated] = {}


@pytest.fixture
def simulated(fleet: Fleet) -> Simulated:
    if "fleet" not in _SIMULATED:
        _SIMULATED["fleet"] = simulate(fleet, days=2.0, seed=11)
    return _SIMULATED["fleet"]


@pytest.fixture
def reader(victoria_metrics: LocalVictoriaMetrics) -> Iterator[VictoriaMetricsReader]:
    opened = VictoriaMetricsReader(parse_store_url(victoria_metrics.store_url))
    yield opened
    opened.close()


def settled(read: Callable[[], Any], expected: Any, timeout_s: float = 30.0) -> Any:
    """``read()`` once it returns ``expected``, or its last value after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    value = read()
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        value = read()
    return value


def count(reader: VictoriaMetricsReader, metric: str) -> int:
    return sum(len(v) for v in samples(reader, metric).values())


def samples(reader: VictoriaMetricsReader, metric: str) -> dict[tuple, dict[int, float]]:
    """Per series (sorted labels): timestamp (ms) -> value."""
    out: dict[tuple, dict[int, float]] = {}
    for s in reader.export(metric):
        key = tuple(sorted(s["metric"].items()))
        out.setdefault(key, {}).update(zip(s["timestamps"], s["values"], strict=True))
    return out


def test_batches_through_the_v2_api_are_read_back_exactly(
    victoria_metrics: LocalVictoriaMetrics,
    fleet: Fleet,
    simulated: Simulated,
    reader: VictoriaMetricsReader,
) -> None:
    with InfluxSink.from_url(victoria_metrics.store_url, fleet, retry_s=5) as sink:
        assert sink.target.api == "v2"
        written = sum(sink.write_series(b) for b in simulated.batches)
        readings = [(r, a) for b in simulated.batches for r, a in b.readings]
        assert len({(r.instrument_id, round(r.ts * 1000)) for r, _ in readings}) == len(readings)
        assert settled(sink.reading_count, len(readings)) == len(readings) > 500

        snapshots = {(s.instrument_id, round(s.evaluated_at * 1000)) for s in simulated.snapshots()}
        health = settled(lambda: count(reader, "health_severity"), len(snapshots))
        assert health == len(snapshots)
        fleet_points = written - simulated.points()
        assert settled(lambda: count(reader, "fleet_status_total"), fleet_points) == fleet_points
        assert fleet_points >= 3  # one per site at least

        # Re-delivery: every batch again, nothing added.
        for batch in simulated.batches:
            sink.write_series(batch)
        assert sink.reading_count() == len(readings)
        assert count(reader, "health_severity") == health


def test_numbers_keep_their_values_and_tags_become_labels(
    victoria_metrics: LocalVictoriaMetrics,
    fleet: Fleet,
    simulated: Simulated,
    reader: VictoriaMetricsReader,
) -> None:
    with InfluxSink.from_url(victoria_metrics.store_url, fleet) as sink:
        sink.write_series(simulated.batches[0])
    reading, assessment = simulated.batches[0].readings[0]
    labels = (
        ("__name__", "reading_corrected"),
        ("instrument", reading.instrument_id),
        ("measurand", fleet.instruments[reading.instrument_id].measurand),
        ("site", reading.site),
        ("tenant", reading.tenant),
    )
    at = round(reading.ts * 1000)

    def value(metric: str, labels: tuple) -> float | None:
        return samples(reader, metric).get(labels, {}).get(at)

    assert settled(lambda: value("reading_corrected", labels), assessment.corrected) == (
        assessment.corrected
    )
    seq_labels = (("__name__", "reading_seq"), *labels[1:])
    assert settled(lambda: value("reading_seq", seq_labels), reading.seq) == reading.seq


def test_a_restarted_sink_seeds_its_counts_from_exported_severities(
    victoria_metrics: LocalVictoriaMetrics,
    fleet: Fleet,
    simulated: Simulated,
    reader: VictoriaMetricsReader,
    make_snapshot,
) -> None:
    with InfluxSink.from_url(victoria_metrics.store_url, fleet) as first:
        for batch in simulated.batches:
            first.write_series(batch)
    snapshots = {(s.instrument_id, round(s.evaluated_at * 1000)) for s in simulated.snapshots()}
    # What the restarted sink reads back must be visible first (see the module docstring).
    assert settled(lambda: count(reader, "health_severity"), len(snapshots)) == len(snapshots)
    later = max(s.evaluated_at for s in simulated.snapshots()) + 60.0
    with InfluxSink.from_url(victoria_metrics.store_url, fleet) as restarted:
        restarted.write_series(
            OutputBatch(snapshots=[make_snapshot("globex-TT-001", Status.CAL_OVERDUE, later)])
        )
    expected = simulated.latest_counts()[("globex", "main")]
    old = next(s for s in simulated.batches[-1].snapshots if s.instrument_id == "globex-TT-001")
    expected[old.status] -= 1
    expected[Status.CAL_OVERDUE] += 1
    at = round(later * 1000)
    place = (("site", "main"), ("tenant", "globex"))

    def point(field: str) -> float | None:
        name = f"fleet_status_{field}"
        return samples(reader, name).get((("__name__", name), *place), {}).get(at)

    # The site's two instruments are both counted, not only the one of the batch.
    assert settled(lambda: point("total"), 2) == 2
    overdue = expected[Status.CAL_OVERDUE]
    assert settled(lambda: point("cal_overdue"), overdue) == overdue


def test_v2_server_away_raises_storage_error_then_the_same_batch_writes(
    victoria_metrics: LocalVictoriaMetrics, fleet: Fleet, simulated: Simulated
) -> None:
    batch = simulated.batches[1]
    with InfluxSink.from_url(victoria_metrics.store_url, fleet, retry_s=1.0) as sink:
        sink.write_series(simulated.batches[0])
        victoria_metrics.stop()
        with pytest.raises(StorageError, match=r"within the retry budget.*server is up"):
            sink.write_series(batch)
        victoria_metrics.start()
        sink.write_series(batch)
        expected = len(simulated.batches[0].readings) + len(batch.readings)
        assert settled(sink.reading_count, expected) == expected
