"""The demo's live screen: progress, fleet health per site, the instruments needing attention."""

from __future__ import annotations

import shutil
from collections import Counter

from rich.console import Group, RenderableType
from rich.table import Table

from calstream.cli.views import WIDE_COLUMNS, progress_panel, site_table, worst_table
from calstream.demo.run import Demo, DemoResult
from metrology.health import severity_rank


class DemoScreen:
    """Renders a running :class:`~calstream.demo.run.Demo` from its in-memory state."""

    def __init__(self, demo: Demo, worst: int = 8) -> None:
        self.demo = demo
        self.worst = worst

    def render(self) -> RenderableType:
        demo = self.demo
        progress = demo.progress
        pipeline = demo.pipeline
        counters = pipeline.counters if pipeline else None
        elapsed = max(progress.elapsed_s, 1e-9)
        figures: dict[str, object] = {
            "published": progress.published,
            "stored": counters.stored if counters else 0,
            "rejected": counters.rejected if counters else 0,
            "alerts": counters.alerts if counters else 0,
            "readings/s": f"{(counters.stored if counters else 0) / elapsed:,.0f}",
            "elapsed": f"{progress.elapsed_s:.0f} s",
        }
        header = progress_panel(
            progress.phase, progress.simulated_fraction, progress.simulated_at, figures
        )
        processor = demo.processor
        if processor is None:
            return header
        counts: dict[tuple[str, str], Counter[str]] = {}
        ranked = []
        for instrument_id, state in list(processor.states.items()):
            spec = processor.contexts[instrument_id].spec
            status = state.status.value if state.status else "NO_DATA"
            counts.setdefault((spec.tenant, spec.site), Counter())[status] += 1
            if state.status is not None:
                ranked.append(
                    (severity_rank(state.status), -(state.status_since or 0.0), instrument_id)
                )
        ranked.sort()
        worst_ids = [i for _, _, i in ranked[: self.worst]]
        wide = shutil.get_terminal_size().columns >= WIDE_COLUMNS
        worst = worst_table(processor.snapshots(worst_ids), wide=wide)
        return Group(header, site_table(counts), worst)

    def summary(self, result: DemoResult) -> RenderableType:
        detection = result.detection
        table = Table(title="Summary", title_justify="left", show_header=False, pad_edge=False)
        table.add_column("what")
        table.add_column("value", justify="right")
        rows = [
            ("readings published (acknowledged by the broker)", f"{result.published:,}"),
            ("readings stored", f"{result.stored:,}"),
            ("readings rejected (dead letters)", f"{result.rejected:,}"),
            ("status changes (alerts)", f"{result.alerts:,}"),
            ("drifts that left tolerance", str(detection.injected_drifts)),
            ("  flagged before leaving tolerance", str(detection.detected_before_oot)),
            (
                "  median warning ahead (days)",
                "-" if detection.median_lead_days is None else f"{detection.median_lead_days:.0f}",
            ),
            ("stable instruments with a reference", str(detection.stable_instruments)),
            ("  false alarms", str(detection.false_alarms)),
            ("store", result.db),
            ("ground truth", result.truth),
        ]
        for what, value in rows:
            table.add_row(what, value)
        return table
