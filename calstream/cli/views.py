"""Terminal views of fleet health (rich): used live by the demo and by `calstream status`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from metrology.assessment import HealthSnapshot, StatusChange
from metrology.health import SEVERITY, Status
from metrology.timebase import iso

STATUS_STYLE: dict[str, str] = {
    Status.OK: "green",
    Status.DRIFTING: "yellow",
    Status.AT_RISK: "dark_orange",
    Status.OUT_OF_TOLERANCE: "bold red",
    Status.CAL_DUE_SOON: "cyan",
    Status.CAL_OVERDUE: "magenta",
    Status.OFFLINE: "bright_black",
    Status.UNVERIFIED: "blue",
}
_COLUMNS = [s.value for s in SEVERITY]
_SHORT = {
    "OUT_OF_TOLERANCE": "OOT",
    "CAL_OVERDUE": "OVERDUE",
    "CAL_DUE_SOON": "DUE SOON",
    "UNVERIFIED": "UNVERIF.",
    "DRIFTING": "DRIFT",
}


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def site_table(
    counts: Mapping[tuple[str, str], Mapping[str, int]], title: str = "Fleet health"
) -> Table:
    """Counts by status per tenant and site, most severe columns first."""
    table = Table(title=title, title_justify="left", expand=False, pad_edge=False)
    table.add_column("tenant / site", no_wrap=True)
    for column in _COLUMNS:
        table.add_column(
            _SHORT.get(column, column), justify="right", style=STATUS_STYLE.get(column, "")
        )
    table.add_column("total", justify="right")
    totals: dict[str, int] = {c: 0 for c in _COLUMNS}
    for (tenant, site), by_status in sorted(counts.items()):
        row = [by_status.get(c, 0) for c in _COLUMNS]
        for c, n in zip(_COLUMNS, row, strict=True):
            totals[c] += n
        table.add_row(f"{tenant} / {site}", *[str(n) if n else "·" for n in row], str(sum(row)))
    table.add_section()
    table.add_row(
        "all", *[str(totals[c]) for c in _COLUMNS], str(sum(totals.values())), style="bold"
    )
    return table


def _number(numbers: Mapping[str, object], key: str, fmt: str = "{:+.3g}") -> str:
    value = numbers.get(key)
    return fmt.format(value) if isinstance(value, int | float) else "-"


def _date(numbers: Mapping[str, object], key: str) -> str:
    value = numbers.get(key)
    return iso(value)[:10] if isinstance(value, int | float) else "-"


def _estimate(numbers: Mapping[str, object]) -> str:
    """The best estimate of the out-of-tolerance date with its standard uncertainty."""
    u = numbers.get("estimated_oot_u_days")
    spread = f" ± {u:.0f} d" if isinstance(u, int | float) else ""
    date = _date(numbers, "estimated_oot_at")
    return date + spread if date != "-" else date


WIDE_COLUMNS = 156
"""Terminal width from which the worst-instruments table shows every number column."""


def worst_table(
    snapshots: Sequence[HealthSnapshot], title: str = "Needs attention", *, wide: bool = True
) -> Table:
    """The most severe instruments: the numbers behind each status and the first reasons.

    ``wide=False`` (a narrow terminal) gives the error and the dates in front of the reasons;
    ``calstream status --instrument ID`` shows everything for one instrument.
    """
    table = Table(title=title, title_justify="left", expand=True, pad_edge=False)
    table.add_column("instrument", no_wrap=True)
    table.add_column("status", no_wrap=True)
    if wide:
        table.add_column("error ± U", justify="right", no_wrap=True)
        table.add_column("p conf.", justify="right", no_wrap=True)
        table.add_column("drift /d", justify="right", no_wrap=True)
        table.add_column("predicted OOT", no_wrap=True)
        table.add_column("best estimate", no_wrap=True)
        table.add_column("due", no_wrap=True)
        table.add_column("interval rec.", justify="right", no_wrap=True)
    table.add_column("why", overflow="fold")
    for snapshot in snapshots:
        n = snapshot.numbers
        u = n.get("u_residual")
        expanded = f" ± {2 * u:.2g}" if isinstance(u, int | float) else ""
        error = _number(n, "residual") + expanded
        why = "; ".join(snapshot.reasons[:2]) if snapshot.reasons else ""
        if wide:
            table.add_row(
                snapshot.instrument_id,
                status_text(snapshot.status),
                error,
                _number(n, "probability_of_conformity", "{:.3f}"),
                _number(n, "drift_rate", "{:+.2g}"),
                _date(n, "predicted_oot_at"),
                _estimate(n),
                _date(n, "due_at"),
                _number(n, "recommended_interval_days", "{:.0f} d"),
                why,
            )
        else:
            numbers = f"error {error}"
            if isinstance(n.get("predicted_oot_at"), int | float):
                numbers += f", predicted out of tolerance {_date(n, 'predicted_oot_at')}"
            if isinstance(n.get("estimated_oot_at"), int | float):
                numbers += f", best estimate {_estimate(n)}"
            table.add_row(snapshot.instrument_id, status_text(snapshot.status), f"{numbers}; {why}")
    return table


INSTRUMENT_SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("conformity", ("residual", "u_residual", "reference", "lower_limit", "upper_limit",
                    "probability_of_conformity", "decision", "guard_band", "decision_rule")),
    ("detectors", ("baseline_mean", "sigma", "shift_to_detect", "ewma", "ewma_limit",
                   "cusum_high", "cusum_low", "cusum_threshold", "drift_since", "drift_detector")),
    ("drift and dates", ("drift_rate", "drift_rate_u", "fit_points", "fit_basis",
                         "drift_rate_since_calibration", "in_use_lower_limit",
                         "in_use_upper_limit", "predicted_oot_at", "prediction_note",
                         "drift_onset_at", "estimated_oot_at", "estimated_oot_u_days",
                         "estimate_note", "out_of_tolerance_since", "first_drift_at")),
    ("calibration", ("certificate_id", "due_at", "interval_days", "hours_in_use",
                     "recommended_interval_days", "interval_method", "interval_reason",
                     "staircase_interval_days", "staircase_reason")),
)  # fmt: skip
"""The snapshot's numbers grouped as ``calstream status --instrument`` shows them."""

_TIMES = frozenset(
    {"drift_since", "predicted_oot_at", "estimated_oot_at", "drift_onset_at",
     "out_of_tolerance_since", "first_drift_at", "due_at"}
)  # fmt: skip


def _shown(key: str, value: object) -> str:
    if value is None:
        return "-"
    if key in _TIMES and isinstance(value, int | float):
        return iso(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def instrument_table(snapshot: HealthSnapshot) -> Table:
    """One instrument's health: status, every reason, and every number behind them."""
    table = Table(
        title=f"{snapshot.instrument_id} ({snapshot.tenant} / {snapshot.site})",
        title_justify="left",
        expand=True,
        pad_edge=False,
        show_header=False,
    )
    table.add_column("what", no_wrap=True, style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("status", status_text(snapshot.status))
    table.add_row("conditions", ", ".join(str(c) for c in snapshot.conditions) or "-")
    for reason in snapshot.reasons:
        table.add_row("why", reason)
    table.add_row("evaluated", iso(snapshot.evaluated_at))
    for section, keys in INSTRUMENT_SECTIONS:
        table.add_section()
        table.add_row(Text(section, style="italic"), "")
        for key in keys:
            if key in snapshot.numbers:
                table.add_row(key, _shown(key, snapshot.numbers[key]))
    return table


def alerts_table(changes: Sequence[StatusChange], title: str = "Recent alerts") -> Table:
    table = Table(title=title, title_justify="left", expand=True, pad_edge=False)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("instrument", no_wrap=True)
    table.add_column("change", no_wrap=True)
    table.add_column("why", overflow="fold")
    for change in changes:
        previous = change.previous or "-"
        table.add_row(
            iso(change.ts)[:16].replace("T", " "),
            change.instrument_id,
            Text.assemble(status_text(previous), " → ", status_text(change.status)),
            change.reasons[0] if change.reasons else "",
        )
    return table


def dead_letter_table(by_reason: Mapping[str, int]) -> Table:
    table = Table(title="Dead letters by reason", title_justify="left", pad_edge=False)
    table.add_column("reason")
    table.add_column("readings", justify="right")
    for reason, count in sorted(by_reason.items(), key=lambda kv: -kv[1]):
        table.add_row(reason, str(count))
    return table


def progress_panel(
    phase: str, fraction: float, simulated_at: float | None, figures: Mapping[str, object]
) -> Panel:
    """A header: phase, simulated date with a bar, and the running counts."""
    bar = ProgressBar(total=1.0, completed=max(0.0, min(fraction, 1.0)), width=40)
    when = iso(simulated_at)[:10] if simulated_at else "-"
    line = Text.assemble(
        (f"{phase:<10}", "bold"), "  simulated ", (when, "cyan"), f"  {fraction:6.1%}"
    )
    counts = Text("   ".join(f"{k} {v}" for k, v in figures.items()))
    grid = Table.grid()
    for row in (line, bar, counts):
        grid.add_row(row)
    return Panel(grid, title="calstream demo", expand=True)
