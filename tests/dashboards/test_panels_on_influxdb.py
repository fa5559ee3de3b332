"""Every query of the InfluxDB flavour, expanded as Grafana would, on a real influxd holding the
simulated run as calstream's InfluxDB sink writes it; and both flavours show the same fleet."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from grafana_macros import expand_influxql, expand_sqlite
from influx_answers import InfluxRun, as_table
from shapes import shape_problems
from simulated_run import SimulatedRun

from dashboards.build import DASHBOARDS
from dashboards.flavours import INFLUXDB_FLAVOUR, SQLITE_FLAVOUR
from dashboards.model import DashboardSpec, PanelSpec

pytestmark = pytest.mark.integration

PANELS = [(board, panel) for board in DASHBOARDS for panel in board.panels]


def variable_values(
    board: DashboardSpec, influx: InfluxRun, run: SimulatedRun, instrument: str
) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for variable in board.variables:
        text = INFLUXDB_FLAVOUR.variables[f"{board.key}.{variable.name}"]
        columns, rows = as_table(influx.query(expand_influxql(text, values, run.time_range)))
        assert columns[-1] == "value", columns  # SHOW TAG VALUES: key, value
        options = [str(row[-1]) for row in rows]
        assert options, f"variable {variable.name} has no options"
        if variable.multi:
            values[variable.name] = options
        else:
            assert instrument in options, f"{instrument} not offered by ${variable.name}"
            values[variable.name] = [instrument]
    return values


def test_the_sink_wrote_the_whole_run(influx_run: InfluxRun, simulated_run: SimulatedRun) -> None:
    readings = sum(len(batch.readings) for batch in simulated_run.batches)
    (row,) = as_table(influx_run.query('SELECT count("value") FROM "reading"'))[1]
    assert row[-1] == readings
    assert influx_run.points > readings


@pytest.mark.parametrize(("board", "panel"), PANELS, ids=[f"{b.key}:{p.query}" for b, p in PANELS])
def test_panel_query_returns_the_shape_its_panel_needs(
    board: DashboardSpec,
    panel: PanelSpec,
    influx_run: InfluxRun,
    simulated_run: SimulatedRun,
    detail_instrument: str,
) -> None:
    values = variable_values(board, influx_run, simulated_run, detail_instrument)
    for query in INFLUXDB_FLAVOUR.queries[panel.query]:
        text = expand_influxql(query.text, values, simulated_run.time_range)
        columns, rows = as_table(influx_run.query(text))
        assert not shape_problems(panel, columns, rows), (
            text,
            shape_problems(panel, columns, rows),
        )


def _rows(columns: list[str], rows: list[Any], *names: str) -> set[tuple[Any, ...]]:
    index = [columns.index(n) for n in names]
    return {tuple(row[i] for i in index) for row in rows}


def test_both_flavours_show_the_same_fleet(
    influx_run: InfluxRun, simulated_run: SimulatedRun, sqlite_connection: sqlite3.Connection
) -> None:
    """Status counts, worst-first list, due list and offline list agree between the embedded
    store (SQLite flavour) and InfluxDB (InfluxQL flavour) for the same run."""
    time_range = simulated_run.time_range
    values = {"tenant": ["acme", "nordfab"], "site": ["bergen", "north", "oslo", "south"]}

    def both(key: str) -> tuple[tuple[list[str], list[Any]], tuple[list[str], list[Any]]]:
        (sqlite_query,) = SQLITE_FLAVOUR.queries[key]
        cursor = sqlite_connection.execute(expand_sqlite(sqlite_query.text, values, time_range))
        sqlite = ([d[0] for d in cursor.description], cursor.fetchall())
        (influx_query,) = INFLUXDB_FLAVOUR.queries[key]
        influx = as_table(influx_run.query(expand_influxql(influx_query.text, values, time_range)))
        return sqlite, influx

    (s_cols, s_rows), (i_cols, i_rows) = both("fleet.by_site")
    counted = ("tenant", "site", "OUT_OF_TOLERANCE", "OFFLINE", "DRIFTING", "OK", "total")
    assert _rows(s_cols, s_rows, *counted) == _rows(i_cols, i_rows, *counted)
    assert sum(row[s_cols.index("total")] for row in s_rows) == 60
    for key, names in (
        ("fleet.instruments", ("instrument", "status", "severity")),
        ("fleet.calibration_due", ("instrument", "status", "certificate_id")),
        ("fleet.offline", ("instrument", "status")),
    ):
        (s_cols, s_rows), (i_cols, i_rows) = both(key)
        assert s_rows, key
        assert _rows(s_cols, s_rows, *names) == _rows(i_cols, i_rows, *names), key
