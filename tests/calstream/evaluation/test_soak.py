"""`calstream soak`, one short run through a real mosquitto: the summary's counts, no timings."""

from __future__ import annotations

import json

import pytest

from calstream.evaluation.soak import soak_command
from calstream.servers.mosquitto import LocalMosquitto


def test_a_short_soak_stores_everything_it_published_and_reports_latency(
    mosquitto: LocalMosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    result = soak_command(
        0.2, instruments=100, broker=mosquitto.url, json_output=True, capacity_readings=20_000
    )
    out = capsys.readouterr()
    summary = json.loads(out.out.strip().splitlines()[-1])
    assert summary == result.as_dict()
    assert summary["published"] > 0
    assert summary["published"] == summary["stored"]  # nothing lost...
    assert summary["duplicates"] == 0 and summary["rejected"] == 0  # ...nothing twice
    assert summary["capacity_readings_per_s"] > 0
    assert summary["target_readings_per_s"] == pytest.approx(
        summary["capacity_readings_per_s"] / 2, rel=0.01
    )
    assert 0 < summary["p50_ms"] <= summary["p99_ms"] <= summary["max_ms"] * 1.02
    samples = summary["samples"]
    assert samples and samples[-1]["stored"] == summary["stored"]
    assert all(s["rss_mb"] > 0 for s in samples)
    assert samples[-1]["journal_batches"] == 0
    assert "latency p50" in out.err and "capacity" in out.err
