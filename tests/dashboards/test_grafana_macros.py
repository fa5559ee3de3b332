"""The expander the panel tests rely on does what Grafana and the datasources do."""

from __future__ import annotations

import pytest
from grafana_macros import (
    ExpansionError,
    TimeRange,
    expand_influxql,
    expand_sqlite,
    variables_used,
)

RANGE = TimeRange.of_seconds(1_790_000_000.0, 1_790_086_400.5)


def test_time_range_is_in_epoch_milliseconds() -> None:
    assert (RANGE.from_ms, RANGE.to_ms) == (1_790_000_000_000, 1_790_086_400_500)


def test_sqlite_variables_formats_and_the_plugins_group_macro() -> None:
    expanded = expand_sqlite(
        "tenant IN (${tenant:sqlstring}) AND id = '$instrument' AND id = '[[instrument]]' "
        "AND ts >= $__from / 1000.0 AND ts < $__to / 1000.0 "
        "GROUP BY $__unixEpochGroupSeconds(ts, 3600)",
        {"tenant": ["acme", "o'hara"], "instrument": ["TT-1"]},
        RANGE,
    )
    assert expanded == (
        "tenant IN ('acme','o''hara') AND id = 'TT-1' AND id = 'TT-1' "
        "AND ts >= 1790000000000 / 1000.0 AND ts < 1790086400500 / 1000.0 "
        "GROUP BY cast((ts / 3600) as int) * 3600"
    )


def test_influxql_regex_format_and_time_filter() -> None:
    expanded = expand_influxql(
        'SELECT 1 FROM "m" WHERE "tenant" =~ /^${tenant:regex}$/ AND "site" =~ /^${site:regex}$/ '
        "AND $timeFilter GROUP BY time($__interval)",
        {"tenant": ["acme", "a.b/c"], "site": ["north"]},
        RANGE,
        interval="10m",
    )
    assert expanded == (
        'SELECT 1 FROM "m" WHERE "tenant" =~ /^(acme|a\\.b\\/c)$/ AND "site" =~ /^north$/ '
        "AND time >= 1790000000000ms and time <= 1790086400500ms GROUP BY time(10m)"
    )


def test_undefined_variables_ambiguous_formats_and_unknown_macros_are_refused() -> None:
    with pytest.raises(ExpansionError, match="not defined"):
        expand_sqlite("SELECT '$nobody'", {}, RANGE)
    with pytest.raises(ExpansionError, match="no format"):
        expand_sqlite("SELECT '$tenant'", {"tenant": ["a", "b"]}, RANGE)
    with pytest.raises(ExpansionError, match="no value"):
        expand_sqlite("SELECT '$tenant'", {"tenant": []}, RANGE)
    with pytest.raises(ExpansionError, match="unsupported macro"):
        expand_sqlite("SELECT 1 WHERE $__timeFilter(ts)", {}, RANGE)
    with pytest.raises(ExpansionError, match="not supported"):
        expand_sqlite("SELECT ${tenant:percentencode}", {"tenant": ["a"]}, RANGE)


def test_variables_used_leaves_out_globals_and_macros() -> None:
    text = (
        "SELECT $__unixEpochGroupSeconds(ts, 60) FROM t WHERE a IN (${tenant:sqlstring}) "
        "AND b = '$instrument' AND c = [[site]] AND ts > $__from AND $timeFilter"
    )
    assert variables_used(text) == {"tenant", "instrument", "site"}
