"""Fleet health: what an operator looks at first, for the tenants and sites selected."""

from __future__ import annotations

from dashboards.model import DashboardSpec, PanelKind, PanelSpec, Row, VariableSpec
from dashboards.panels import STATUSES

DUE_COLUMNS = ("tenant", "site", "instrument", "status", "certificate_id", "due_at", "days_to_due")
"""Columns of a calibration due list (fleet health and calibration provider dashboards)."""
TENANT = VariableSpec("tenant", "Tenant", description="Manufacturer tenants")
SITE = VariableSpec("site", "Site", description="Sites of the selected tenants")

FLEET = DashboardSpec(
    key="fleet",
    title="calstream: fleet health",
    description=(
        "Health of every instrument of the selected tenants and sites: counts by status, the "
        "instruments worst first (linked to their detail), calibrations due, silent "
        "instruments, status changes and refused input."
    ),
    variables=(TENANT, SITE),
    links_to=("instrument", "provider"),
    rows=(
        Row(
            "Fleet at a glance",
            (
                PanelSpec(
                    "fleet.status_counts",
                    "Instruments by status",
                    PanelKind.STAT,
                    24,
                    5,
                    description="Latest status of every instrument (the most severe condition).",
                    columns=(*STATUSES, "total"),
                    status_colours=True,
                ),
            ),
        ),
        Row(
            "By tenant and site",
            (
                PanelSpec(
                    "fleet.by_site",
                    "Counts by status per tenant and site",
                    PanelKind.TABLE,
                    24,
                    8,
                    columns=("tenant", "site", *STATUSES, "total"),
                ),
            ),
        ),
        Row(
            "Instruments",
            (
                PanelSpec(
                    "fleet.instruments",
                    "Instruments by status (worst first)",
                    PanelKind.TABLE,
                    24,
                    11,
                    description="Click an instrument for its detail: error, drift, prediction.",
                    columns=(
                        "instrument",
                        "tenant",
                        "site",
                        "status",
                        "severity",
                        "probability_of_conformity",
                        "drift_rate",
                        "days_to_due",
                        "last_reading_at",
                    ),
                    link_to_instrument=True,
                    sort_by="severity",
                    status_colours=True,
                ),
            ),
        ),
        Row(
            "Calibration and connectivity",
            (
                PanelSpec(
                    "fleet.calibration_due",
                    "Calibration due soon or overdue",
                    PanelKind.TABLE,
                    12,
                    9,
                    columns=DUE_COLUMNS,
                    link_to_instrument=True,
                    sort_by="days_to_due",
                    status_colours=True,
                ),
                PanelSpec(
                    "fleet.offline",
                    "Offline instruments",
                    PanelKind.TABLE,
                    12,
                    9,
                    description="No reading within the expected reporting period.",
                    columns=("tenant", "site", "instrument", "status", "last_reading_at"),
                    link_to_instrument=True,
                    sort_by="last_reading_at",
                    status_colours=True,
                ),
            ),
        ),
        Row(
            "Events",
            (
                PanelSpec(
                    "fleet.alerts_over_time",
                    "Status changes per hour, by new status",
                    PanelKind.TIMESERIES,
                    24,
                    7,
                    unit="short",
                ),
                PanelSpec(
                    "fleet.recent_alerts",
                    "Recent alerts (status changes)",
                    PanelKind.TABLE,
                    16,
                    10,
                    columns=("time", "tenant", "site", "instrument", "previous", "status"),
                    link_to_instrument=True,
                    status_colours=True,
                ),
                PanelSpec(
                    "fleet.dead_letters",
                    "Refused input by reason",
                    PanelKind.TABLE,
                    8,
                    10,
                    description="Dead letters: input refused with a reason, never dropped.",
                    columns=("reason", "readings"),
                ),
            ),
        ),
    ),
)
