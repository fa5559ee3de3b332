"""Turning a :class:`PanelSpec` into a Grafana panel, the same for every flavour.

Everything visual lives here once: panel types, units, colours by status, the data link to the
instrument detail dashboard, date columns, default sorting. A flavour contributes only the
datasource and the query text of each target.
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import DataSourceRef

from dashboards.model import PanelKind, PanelSpec
from dashboards.targets import Target
from storage.schema import NO_DATA, STATUS_KEYS

GRID_COLUMNS = 24

STATUSES: tuple[str, ...] = tuple(key for key in STATUS_KEYS if key != NO_DATA)
"""Instrument statuses, most severe first (``metrology.health.SEVERITY`` via the store)."""

STATUS_COLOURS: dict[str, str] = {
    "OUT_OF_TOLERANCE": "red",
    "OFFLINE": "purple",
    "CAL_OVERDUE": "dark-orange",
    "AT_RISK": "orange",
    "DRIFTING": "yellow",
    "CAL_DUE_SOON": "blue",
    "UNVERIFIED": "#8e8e8e",
    "OK": "green",
    NO_DATA: "#5a5a5a",
}
assert set(STATUS_COLOURS) == set(STATUS_KEYS), "every status needs a colour"

BAND_STYLES: dict[str, tuple[str, str]] = {
    "upper_limit": ("red", "dash"),
    "lower_limit": ("red", "dash"),
    "error + U": ("#8e8e8e", "dot"),
    "error - U": ("#8e8e8e", "dot"),
}
"""Series drawn as limits or uncertainty band around the error (same names in every flavour)."""

DATE_COLUMNS = "/_at$/"
"""Columns named ``..._at`` carry epoch milliseconds and are shown as dates."""


def status_mappings() -> list[model.ValueMapping]:
    options = {
        status: model.ValueMappingResult(color=STATUS_COLOURS[status], index=index)
        for index, status in enumerate(STATUS_KEYS)
    }
    return [model.ValueMap(options=options)]


def instrument_link(instrument_uid: str) -> dict[str, object]:
    """Data link from a row to the instrument detail dashboard, keeping the time range."""
    url = (
        f"/d/{instrument_uid}?var-tenant=${{__data.fields.tenant}}"
        "&var-site=${__data.fields.site}&var-instrument=${__data.fields.instrument}"
        "&${__url_time_range}"
    )
    return {"title": "Instrument detail: ${__data.fields.instrument}", "url": url}


def _thresholds(colour: str = "text") -> dashboard_builder.ThresholdsConfig:
    return (
        dashboard_builder.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=None, color=colour)])
    )


def _date_override() -> list[model.DynamicConfigValue]:
    return [model.DynamicConfigValue(id_val="unit", value="dateTimeAsIso")]


def build_panel(
    spec: PanelSpec,
    panel_id: int,
    position: model.GridPos,
    datasource: DataSourceRef,
    targets: Sequence[Target],
    instrument_uid: str,
) -> cogbuilder.Builder[model.Panel]:
    """The SDK panel builder for ``spec`` at ``position`` with the flavour's targets."""
    panel: stat.Panel | table.Panel | timeseries.Panel
    if spec.kind is PanelKind.STAT:
        panel = stat.Panel().color_mode(common.BigValueColorMode.BACKGROUND)
        panel = panel.graph_mode(common.BigValueGraphMode.NONE)
        panel = panel.reduce_options(
            common_builder.ReduceDataOptions()
            .calcs(["lastNotNull"])
            .values(False)
            .fields(spec.value_fields or "")
        )
        panel = panel.text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        if spec.status_colours:
            for status in STATUS_KEYS:
                panel = panel.override_by_name(
                    status,
                    [
                        model.DynamicConfigValue(
                            id_val="color",
                            value={"mode": "fixed", "fixedColor": STATUS_COLOURS[status]},
                        )
                    ],
                )
    elif spec.kind is PanelKind.TABLE:
        panel = table.Panel().cell_height(common.TableCellHeight.SM).filterable(True)
        if spec.sort_by:
            panel = panel.sort_by(
                [common_builder.TableSortByFieldState().display_name(spec.sort_by)]
            )
        if spec.status_colours:
            panel = panel.override_by_name(
                "status",
                [
                    model.DynamicConfigValue(
                        id_val="custom.cellOptions", value={"type": "color-background"}
                    )
                ],
            )
        panel = panel.override_by_regexp(DATE_COLUMNS, _date_override())
        if spec.link_to_instrument:
            panel = panel.override_by_name(
                "instrument",
                [model.DynamicConfigValue(id_val="links", value=[instrument_link(instrument_uid)])],
            )
    else:
        panel = (
            timeseries.Panel()
            .line_width(1)
            .fill_opacity(0)
            .show_points(common.VisibilityMode.AUTO)
            .span_nulls(False)
            .legend(
                common_builder.VizLegendOptions()
                .show_legend(True)
                .display_mode(common.LegendDisplayMode.LIST)
                .placement(common.LegendPlacement.BOTTOM)
            )
        )
        for name, (colour, line) in BAND_STYLES.items():
            panel = panel.override_by_name(
                name,
                [
                    model.DynamicConfigValue(
                        id_val="color", value={"mode": "fixed", "fixedColor": colour}
                    ),
                    model.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": line}),
                ],
            )
    panel = panel.id(panel_id).title(spec.title).datasource(datasource).grid_pos(position)
    if spec.description:
        panel = panel.description(spec.description)
    if spec.unit:
        panel = panel.unit(spec.unit)
    if spec.decimals is not None:
        panel = panel.decimals(spec.decimals)
    if spec.min_value is not None:
        panel = panel.min(spec.min_value)
    if spec.max_value is not None:
        panel = panel.max(spec.max_value)
    if spec.status_colours:
        panel = panel.mappings(status_mappings())
    if spec.kind is not PanelKind.TIMESERIES:
        panel = panel.thresholds(_thresholds())
    for target in targets:
        panel = panel.with_target(target)
    return panel


def layout(
    rows: Sequence[Sequence[PanelSpec]],
) -> list[tuple[int, list[tuple[PanelSpec, model.GridPos]]]]:
    """Grid positions: each row starts with a one-unit row header, panels flow left to right.

    Returns, per row, the header's ``y`` and each panel with its position. A panel that does
    not fit in what is left of the line starts a new line below the tallest panel of the line.
    """
    placed: list[tuple[int, list[tuple[PanelSpec, model.GridPos]]]] = []
    y = 0
    for panels in rows:
        header_y = y
        y += 1
        x = 0
        line_height = 0
        positions: list[tuple[PanelSpec, model.GridPos]] = []
        for spec in panels:
            if not 0 < spec.width <= GRID_COLUMNS:
                raise ValueError(f"panel {spec.title!r}: width {spec.width} not in 1..24")
            if x + spec.width > GRID_COLUMNS:
                x, y, line_height = 0, y + line_height, 0
            positions.append((spec, model.GridPos(h=spec.height, w=spec.width, x=x, y=y)))
            x += spec.width
            line_height = max(line_height, spec.height)
        y += line_height
        placed.append((header_y, positions))
    return placed
