"""Calibration provider: every client fleet at once, the due list and the worst instruments."""

from __future__ import annotations

from dashboards.fleet import DUE_COLUMNS
from dashboards.model import DashboardSpec, PanelKind, PanelSpec, Row, VariableSpec
from dashboards.panels import STATUSES

PROVIDER = DashboardSpec(
    key="provider",
    title="calstream: calibration provider",
    description=(
        "A calibration provider's view of its clients' fleets: health per client, the "
        "calibrations due across clients and the instruments that need attention first."
    ),
    variables=(
        VariableSpec("tenant", "Client", description="Client tenants"),
        VariableSpec("site", "Site"),
    ),
    links_to=("fleet", "instrument"),
    rows=(
        Row(
            "Client fleets",
            (
                PanelSpec(
                    "provider.status_counts",
                    "Client instruments by status",
                    PanelKind.STAT,
                    24,
                    5,
                    columns=(*STATUSES, "total"),
                    status_colours=True,
                ),
                PanelSpec(
                    "provider.client_fleets",
                    "All client fleets",
                    PanelKind.TABLE,
                    24,
                    8,
                    columns=("tenant", *STATUSES, "total"),
                ),
            ),
        ),
        Row(
            "Calibration work",
            (
                PanelSpec(
                    "provider.due_list",
                    "Due list across clients",
                    PanelKind.TABLE,
                    12,
                    11,
                    columns=DUE_COLUMNS,
                    link_to_instrument=True,
                    sort_by="days_to_due",
                    status_colours=True,
                ),
                PanelSpec(
                    "provider.worst",
                    "Worst instruments",
                    PanelKind.TABLE,
                    12,
                    11,
                    columns=(
                        "tenant",
                        "site",
                        "instrument",
                        "status",
                        "severity",
                        "probability_of_conformity",
                        "drift_rate",
                    ),
                    link_to_instrument=True,
                    sort_by="severity",
                    status_colours=True,
                ),
            ),
        ),
        Row(
            "Events",
            (
                PanelSpec(
                    "provider.changes_over_time",
                    "Status changes per client and day",
                    PanelKind.TIMESERIES,
                    24,
                    7,
                    unit="short",
                ),
            ),
        ),
    ),
)
