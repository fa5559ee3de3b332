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


def worst_table(snapshots: Sequence[HealthSnapshot], title: str = "Needs attention") -> Table:
    """The most severe instruments with the first reason behind each status."""
    table = Table(title=title, title_justify="left", expand=True, pad_edge=False)
    table.add_column("instrument", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("why", overflow="fold")
    for snapshot in snapshots:
        table.add_row(
            snapshot.instrument_id,
            status_text(snapshot.status),
            "; ".join(snapshot.reasons[:2]) if snapshot.reasons else "",
        )
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
