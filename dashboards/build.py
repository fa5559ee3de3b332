"""Build the dashboards (SDK builders) and write them as stable JSON.

Stable means byte-identical on every run: sorted keys, two-space indent, fixed uids and panel
ids, no timestamps, no ``id`` or ``version`` (Grafana assigns those on import). A test
regenerates the committed files under ``dashboards/json/`` and compares bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from dashboards.errors import UnknownQuery
from dashboards.flavours import FLAVOURS, Flavour
from dashboards.fleet import FLEET
from dashboards.instrument import INSTRUMENT
from dashboards.model import DashboardSpec
from dashboards.panels import build_panel, layout
from dashboards.provider import PROVIDER
from dashboards.targets import Target

DASHBOARDS: tuple[DashboardSpec, ...] = (FLEET, INSTRUMENT, PROVIDER)
JSON_DIR = Path(__file__).parent / "json"
"""Where the generated dashboards are committed: ``json/<flavour>/<dashboard>.json``."""


def build_dashboard(spec: DashboardSpec, flavour: Flavour) -> dashboard_builder.Dashboard:
    """The SDK builder of one dashboard in one flavour."""
    datasource = flavour.datasource.ref()
    board = (
        dashboard_builder.Dashboard(spec.title)
        .uid(flavour.uid(spec.key))
        .description(spec.description)
        .tags([*spec.tags, flavour.name])
        .editable()
        .timezone("utc")
        .time(spec.time_from, "now")
        .refresh("1m")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
    )
    for key in spec.links_to:
        board = board.link(
            dashboard_builder.DashboardLink(f"{key.capitalize()} dashboard")
            .type(model.DashboardLinkType.LINK)
            .url(f"/d/{flavour.uid(key)}")
            .keep_time(True)
            .include_vars(key != "instrument")
            .icon("dashboard")
        )
    for variable in spec.variables:
        key = f"{spec.key}.{variable.name}"
        try:
            text = flavour.variables[key]
        except KeyError:
            raise UnknownQuery(f"{flavour.name}: no query for variable {key}") from None
        query_variable = dashboard_builder.QueryVariable(variable.name)
        if variable.include_all:
            # Open on every tenant and site the datasource holds.
            query_variable = query_variable.current(
                model.VariableOption(selected=True, text=["All"], value=["$__all"])
            )
        board = board.with_variable(
            query_variable.label(variable.label)
            .description(variable.description or variable.label)
            .datasource(datasource)
            .query(text)
            .definition(text)
            .refresh(model.VariableRefresh.ON_DASHBOARD_LOAD)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
            .multi(variable.multi)
            .include_all(variable.include_all)
        )
    panel_id = 0
    instrument_uid = flavour.uid(INSTRUMENT.key)
    for row, (header_y, placed) in zip(
        spec.rows, layout([r.panels for r in spec.rows]), strict=True
    ):
        panel_id += 1
        board = board.with_row(
            dashboard_builder.Row(row.title)
            .id(panel_id)
            .grid_pos(model.GridPos(h=1, w=24, x=0, y=header_y))
        )
        for panel_spec, position in placed:
            panel_id += 1
            try:
                queries = flavour.queries[panel_spec.query]
            except KeyError:
                raise UnknownQuery(f"{flavour.name}: no query {panel_spec.query}") from None
            targets = [
                Target(flavour.target(flavour.datasource, chr(ord("A") + i), query))
                for i, query in enumerate(queries)
            ]
            board = board.with_panel(
                build_panel(panel_spec, panel_id, position, datasource, targets, instrument_uid)
            )
    return board


def dashboard_document(spec: DashboardSpec, flavour: Flavour) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (a plain dict)."""
    encoded = json.dumps(build_dashboard(spec, flavour).build(), cls=JSONEncoder)
    document: dict[str, Any] = json.loads(encoded)
    for link in document.get("links", []):
        # The SDK puts every link in the controls menu; in the header they are one click away.
        link.pop("placement", None)
    return document


def render(document: dict[str, Any]) -> str:
    """Stable text of a dashboard document."""
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def selected(flavour: str) -> list[Flavour]:
    """``sqlite``, ``influxdb`` or ``all``."""
    if flavour == "all":
        return list(FLAVOURS.values())
    try:
        return [FLAVOURS[flavour]]
    except KeyError:
        raise ValueError(f"flavour must be one of {[*FLAVOURS, 'all']}, got {flavour!r}") from None


def documents(flavours: Iterable[Flavour]) -> dict[str, dict[str, Any]]:
    """Every dashboard of the given flavours by relative path ``<flavour>/<dashboard>.json``."""
    return {
        f"{flavour.name}/{spec.key}.json": dashboard_document(spec, flavour)
        for flavour in flavours
        for spec in DASHBOARDS
    }


def export(directory: Path, flavours: Iterable[Flavour]) -> list[Path]:
    """Write ``<directory>/<flavour>/<dashboard>.json``; returns the files written."""
    written = []
    for relative, document in documents(flavours).items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(document), encoding="utf-8")
        written.append(path)
    return written


def main() -> None:  # pragma: no cover - `python -m dashboards.build` regenerates the JSON
    for path in export(JSON_DIR, FLAVOURS.values()):
        print(path)


if __name__ == "__main__":  # pragma: no cover
    main()
