"""Instrument detail: the numbers behind one instrument's status, for metrologists."""

from __future__ import annotations

from dashboards.model import DashboardSpec, PanelKind, PanelSpec, Row, VariableSpec

INSTRUMENT = DashboardSpec(
    key="instrument",
    title="calstream: instrument detail",
    description=(
        "One instrument: raw and corrected values, its error against the tolerance limits with "
        "the expanded uncertainty, the drift detectors, the drift fit and predicted "
        "out-of-tolerance date against the calibration due date, conformity and decisions."
    ),
    variables=(
        VariableSpec("tenant", "Tenant"),
        VariableSpec("site", "Site"),
        VariableSpec("instrument", "Instrument", multi=False, include_all=False),
    ),
    links_to=("fleet", "provider"),
    time_from="now-7d",
    rows=(
        Row(
            "Now",
            (
                PanelSpec(
                    "instrument.status",
                    "Status",
                    PanelKind.STAT,
                    4,
                    5,
                    text_value=True,
                    value_fields="/^status$/",
                    status_colours=True,
                ),
                PanelSpec(
                    "instrument.conformity",
                    "Probability of conformity",
                    PanelKind.STAT,
                    5,
                    5,
                    description="Under the decision rule in force (see decisions below).",
                    unit="percentunit",
                    decimals=2,
                    min_value=0.0,
                    max_value=1.0,
                ),
                PanelSpec(
                    "instrument.drift_rate",
                    "Drift rate (unit per day)",
                    PanelKind.STAT,
                    5,
                    5,
                    decimals=5,
                ),
                PanelSpec(
                    "instrument.days_to_oot",
                    "Days to predicted out of tolerance",
                    PanelKind.STAT,
                    5,
                    5,
                    unit="d",
                    description="Empty when no drift is significant enough to extrapolate.",
                ),
                PanelSpec(
                    "instrument.days_to_due",
                    "Days to calibration due",
                    PanelKind.STAT,
                    5,
                    5,
                    unit="d",
                ),
            ),
        ),
        Row(
            "Readings and error",
            (
                PanelSpec(
                    "instrument.values",
                    "Raw and corrected values",
                    PanelKind.TIMESERIES,
                    24,
                    8,
                    description="Corrected with the calibration valid at each reading's time.",
                ),
                PanelSpec(
                    "instrument.error",
                    "Error of indication, ±U (k = 2) and tolerance limits",
                    PanelKind.TIMESERIES,
                    24,
                    9,
                    description=(
                        "Error = corrected - reference; U = 2 u(error); limits widened by the "
                        "relative part of the tolerance at the reference value."
                    ),
                ),
            ),
        ),
        Row(
            "Drift",
            (
                PanelSpec(
                    "instrument.detectors",
                    "EWMA and CUSUM of the error",
                    PanelKind.TIMESERIES,
                    12,
                    8,
                ),
                PanelSpec(
                    "instrument.drift_rate_series",
                    "Fitted drift rate (unit per day)",
                    PanelKind.TIMESERIES,
                    12,
                    8,
                ),
                PanelSpec(
                    "instrument.prediction",
                    "Drift fit and predicted out-of-tolerance date against the due date",
                    PanelKind.TABLE,
                    24,
                    5,
                    columns=(
                        "drift_rate",
                        "drift_rate_u",
                        "fit_points",
                        "first_drift_at",
                        "predicted_oot_at",
                        "due_at",
                        "days_to_predicted_oot",
                        "days_to_due",
                        "prediction_note",
                    ),
                ),
            ),
        ),
        Row(
            "Conformity and decisions",
            (
                PanelSpec(
                    "instrument.conformity_series",
                    "Probability of conformity",
                    PanelKind.TIMESERIES,
                    12,
                    9,
                    unit="percentunit",
                    min_value=0.0,
                    max_value=1.0,
                ),
                PanelSpec(
                    "instrument.decisions",
                    "Decisions: status changes with rule and reasons",
                    PanelKind.TABLE,
                    12,
                    9,
                    columns=(
                        "time",
                        "previous",
                        "status",
                        "decision",
                        "decision_rule",
                        "probability_of_conformity",
                        "reasons",
                    ),
                    status_colours=True,
                ),
                PanelSpec(
                    "instrument.certificate",
                    "Calibration in force",
                    PanelKind.TABLE,
                    24,
                    4,
                    columns=("certificate_id", "due_at", "days_to_due"),
                ),
            ),
        ),
    ),
)
