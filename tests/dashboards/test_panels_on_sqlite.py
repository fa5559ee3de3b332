"""Every query of the SQLite flavour, expanded as Grafana would, on a store of a simulated run."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from grafana_macros import expand_sqlite
from shapes import shape_problems
from simulated_run import SimulatedRun

from dashboards.build import DASHBOARDS
from dashboards.flavours import SQLITE_FLAVOUR
from dashboards.model import DashboardSpec, PanelKind, PanelSpec

PANELS = [(board, panel) for board in DASHBOARDS for panel in board.panels]


def run(conn: sqlite3.Connection, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    cursor = conn.execute(sql)
    return [d[0] for d in cursor.description], cursor.fetchall()


def variable_values(
    board: DashboardSpec, conn: sqlite3.Connection, run_: SimulatedRun, instrument: str
) -> dict[str, list[str]]:
    """Run the dashboard's variable queries in order, as Grafana does (chained): "All" for
    multi-value variables, ``instrument`` for the single instrument."""
    values: dict[str, list[str]] = {}
    for variable in board.variables:
        sql = expand_sqlite(
            SQLITE_FLAVOUR.variables[f"{board.key}.{variable.name}"], values, run_.time_range
        )
        columns, rows = run(conn, sql)
        assert len(columns) == 1, f"{variable.name}: the plugin needs one column, got {columns}"
        options = [str(row[0]) for row in rows]
        assert options, f"variable {variable.name} has no options"
        if variable.multi:
            values[variable.name] = options
        else:
            assert instrument in options, f"{instrument} not offered by ${variable.name}"
            values[variable.name] = [instrument]
    return values


def test_the_simulated_run_has_every_status_the_panels_show(
    sqlite_connection: sqlite3.Connection,
) -> None:
    statuses = {
        row[0]
        for row in sqlite_connection.execute(
            "SELECT DISTINCT json_each.value FROM instrument_state, json_each(conditions)"
        )
    }
    assert {"OUT_OF_TOLERANCE", "OFFLINE", "CAL_OVERDUE", "DRIFTING", "CAL_DUE_SOON"} <= statuses
    (dead,) = sqlite_connection.execute("SELECT SUM(count) FROM dead_letters").fetchone()
    assert dead > 0


@pytest.mark.parametrize(("board", "panel"), PANELS, ids=[f"{b.key}:{p.query}" for b, p in PANELS])
def test_panel_query_returns_the_shape_its_panel_needs(
    board: DashboardSpec,
    panel: PanelSpec,
    simulated_run: SimulatedRun,
    sqlite_connection: sqlite3.Connection,
    detail_instrument: str,
) -> None:
    values = variable_values(board, sqlite_connection, simulated_run, detail_instrument)
    for query in SQLITE_FLAVOUR.queries[panel.query]:
        sql = expand_sqlite(query.text, values, simulated_run.time_range)
        columns, rows = run(sqlite_connection, sql)
        assert not shape_problems(panel, columns, rows), (sql, shape_problems(panel, columns, rows))
        if panel.kind is PanelKind.TIMESERIES:
            # the plugin's long-to-wide conversion needs the rows in ascending time
            times = [row[columns.index("time")] for row in rows]
            assert times == sorted(times), f"{panel.query}: time not ascending"


def test_tenant_variable_scopes_every_fleet_table(
    simulated_run: SimulatedRun, sqlite_connection: sqlite3.Connection
) -> None:
    """With one tenant selected, no row of another tenant shows (the rows of acme do)."""
    time_range = simulated_run.time_range
    values = {"tenant": ["acme"]}
    sites_sql = expand_sqlite(SQLITE_FLAVOUR.variables["fleet.site"], values, time_range)
    values["site"] = [row[0] for row in sqlite_connection.execute(sites_sql)]
    seen_tenants: set[str] = set()
    for key in ("fleet.instruments", "fleet.recent_alerts", "fleet.by_site", "provider.worst"):
        (query,) = SQLITE_FLAVOUR.queries[key]
        columns, rows = run(sqlite_connection, expand_sqlite(query.text, values, time_range))
        tenant = columns.index("tenant")
        seen_tenants |= {row[tenant] for row in rows}
    assert seen_tenants == {"acme"}
