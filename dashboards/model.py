"""What a dashboard is made of, independent of the datasource that feeds it.

A :class:`DashboardSpec` is rows of :class:`PanelSpec`; a panel names its query by a key
(``"fleet.by_site"``) and says what shape of data it needs. Each flavour (``queries_sqlite``,
``queries_influxql``) maps every key to the query text for its datasource, so the panel
structure exists once and the flavours differ only in datasource and query text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class PanelKind(StrEnum):
    """Grafana panel types used by calstream's dashboards."""

    STAT = "stat"
    TABLE = "table"
    TIMESERIES = "timeseries"


class ResultFormat(StrEnum):
    """How the datasource should shape a query's result."""

    TABLE = "table"
    TIME_SERIES = "time_series"


@dataclass(frozen=True, slots=True)
class Query:
    """One query of one flavour: its text (with Grafana macros and variables) and format."""

    text: str
    format: ResultFormat = ResultFormat.TABLE
    alias: str | None = None
    """InfluxQL: Grafana's alias (legend) pattern, e.g. ``$tag_status``."""


@dataclass(frozen=True, slots=True)
class PanelSpec:
    """One panel: what it shows and the shape of data it needs.

    ``query`` is the key each flavour maps to one or more :class:`Query` (one target each).
    ``columns`` are the columns a table panel needs (besides any the flavour adds); a stat
    panel needs one row, numeric unless ``text_value``; a time series needs a time column and
    at least one numeric column.
    """

    query: str
    title: str
    kind: PanelKind
    width: int
    height: int
    description: str = ""
    unit: str | None = None
    decimals: int | None = None
    columns: tuple[str, ...] = ()
    text_value: bool = False
    value_fields: str | None = None
    """Stat: the fields shown (Grafana's field regex), e.g. ``/^status$/`` for a text value;
    default: every numeric field."""
    link_to_instrument: bool = False
    """Table rows link to the instrument detail dashboard (needs an ``instrument`` column)."""
    sort_by: str | None = None
    """Table: column sorted ascending by default (e.g. ``severity``, worst first)."""
    status_colours: bool = False
    """Colour status names (cells, stat values) by severity."""
    min_value: float | None = None
    max_value: float | None = None
    # every "..._at" column carries epoch milliseconds and is shown as a date


@dataclass(frozen=True, slots=True)
class Row:
    """A titled band of panels, laid out left to right and wrapped at 24 columns."""

    title: str
    panels: tuple[PanelSpec, ...]


@dataclass(frozen=True, slots=True)
class VariableSpec:
    """A template variable; each flavour supplies its query (keyed ``<dashboard>.<name>``)."""

    name: str
    label: str
    multi: bool = True
    include_all: bool = True
    description: str = ""


@dataclass(frozen=True, slots=True)
class DashboardSpec:
    """A dashboard: ``key`` names it in file names and uids (``calstream-<key>-<flavour>``)."""

    key: str
    title: str
    description: str
    variables: tuple[VariableSpec, ...]
    rows: tuple[Row, ...]
    tags: tuple[str, ...] = ("calstream",)
    time_from: str = "now-30d"
    links_to: tuple[str, ...] = field(default=())
    """Keys of the dashboards linked from this one's header."""

    @property
    def panels(self) -> tuple[PanelSpec, ...]:
        return tuple(panel for row in self.rows for panel in row.panels)
