"""The detection benchmark's figures as tables: detection, predicted dates, false alarms, goals."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Group
from rich.table import Table
from rich.text import Text

from calstream.evaluation.detection.goals import goals
from calstream.evaluation.detection.run import DetectBenchResult, SeedCase
from edge_sim.behaviour import Behaviour
from edge_sim.scoring import ALL


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


_SHORT_CAUSES = {"OUT_OF_TOLERANCE": "OOT", "DRIFTING/CUSUM": "CUSUM", "DRIFTING/EWMA": "EWMA"}


def _causes(causes: Mapping[str, int]) -> str:
    return (
        ", ".join(f"{_SHORT_CAUSES.get(cause, cause)} {count}" for cause, count in causes.items())
        or "-"
    )


def detect_bench_tables(result: DetectBenchResult) -> Group:
    """The figures as rich tables (detection, predicted date, false alarms, goals)."""
    s = result.score
    first = result.cases[0] if result.cases else SeedCase(0)
    title = (
        f"calstream detect-bench: {len(result.cases)} seeds x {first.instruments} instruments "
        f"x {first.sim_days:g} days"
    )
    detection = Table(title=f"{title}\nDetection before the true out-of-tolerance time")
    for column in (
        "drift kind",
        "leave tol.",
        "before OOT",
        "by a warning",
        "late",
        "missed",
        "rate",
        "onset->flag d (med/p90)",
        "lead d (med/p90)",
        "within tol. flagged",
        "flagged before onset",
        "first flag by (leaving tol.)",
    ):
        detection.add_column(
            column, justify="left" if column.startswith(("drift", "first")) else "right"
        )
    for name, k in s.kinds.items():
        detection.add_row(
            name if name != Behaviour.STEP_SHIFT.value else "step_shift (within tol.)",
            str(k.leaving_tolerance),
            str(k.detected_before_oot),
            str(k.warned_before_oot),
            str(k.detected_late),
            str(k.missed),
            _share(k.detection_rate),
            f"{_days(k.delay_days_median)} / {_days(k.delay_days_p90)}",
            f"{_days(k.lead_days_median)} / {_days(k.lead_days_p90)}",
            f"{k.within_tolerance_flagged}/{k.within_tolerance}",
            str(k.flagged_before_onset),
            _causes(k.first_flag_causes),
            style="bold" if name == ALL else None,
        )
    detection.caption = (
        "by a warning: first flag DRIFTING (CUSUM, EWMA) or AT_RISK, not an out-of-tolerance "
        f"residual (OOT). Apart: {s.instant_shifts} step shifts straight out of tolerance "
        f"({s.instant_shifts_flagged} flagged); {s.unobservable_drifts} drifts without a "
        "reference (UNVERIFIED, not scored)"
    )
    prediction = Table(title="First predicted out-of-tolerance date (drifts leaving tolerance)")
    for column in (
        "drift kind",
        "leave tol.",
        "first prediction before OOT",
        "only after OOT",
        "never (no certificate)",
        "|error| / time left (med/p90)",
        "signed (med)",
    ):
        prediction.add_column(column, justify="left" if column == "drift kind" else "right")
    for name, k in s.kinds.items():
        if name == Behaviour.STEP_SHIFT.value:
            continue  # a step shift within tolerance never leaves it
        prediction.add_row(
            name,
            str(k.leaving_tolerance),
            str(k.predicted_before_oot),
            str(k.predicted_after_oot),
            f"{k.never_predicted} ({k.never_predicted_uncertified})",
            f"{_share(k.date_error_median)} / {_share(k.date_error_p90)}",
            _share(k.date_bias_median),
            style="bold" if name == ALL else None,
        )
    prediction.caption = "signed < 0: predicted too early"
    alarms = Table(title="False alarms on stable instruments with a reference")
    for column in ("stable", "instrument-years", "flagged", "per instrument-year", "share"):
        alarms.add_column(column, justify="right")
    alarms.add_column("first flag by", justify="left")
    alarms.add_column("flagged/stable by reference", justify="left")
    alarms.add_row(
        str(s.stable_instruments),
        f"{s.stable_instrument_years:.1f}",
        str(s.stable_flagged),
        _share(s.false_alarms_per_instrument_year),
        _share(s.stable_flagged_fraction),
        _causes(s.false_alarm_causes),
        ", ".join(f"{kind} {f}/{n}" for kind, (f, n) in s.false_alarms_by_reference.items()),
    )
    alarms.caption = (
        f"first flagged with no certificate in force: {s.false_alarms_without_certificate}; "
        f"stable instruments that got a predicted OOT date: {s.stable_predicted}"
    )
    goal_table = Table(title="calstream's goals (docs/metrology.md)")
    for column in ("figure", "value", "goal", "met"):
        goal_table.add_column(column, justify="left" if column == "figure" else "right")
    for name, row in goals(s).items():
        value = row["value"]
        met = row["met"]
        goal_table.add_row(
            name,
            _share(value if isinstance(value, float) else None),
            str(row["goal"]),
            "-" if met is None else ("[green]yes[/]" if met else "[red]no[/]"),
        )
    goal_table.caption = (
        f"{result.readings:,} readings ({result.rejected} rejected at admission, "
        f"{result.failed} failed in step) in {result.elapsed_s:.0f} s with {result.workers} "
        f"worker(s); seed runs took {result.seed_wall_s:.0f} s, "
        f"{result.seed_cpu_s:.0f} s of CPU"
    )
    parts: list[Table | Text] = [detection, prediction, alarms, goal_table]
    for seed, error in result.seed_errors.items():
        parts.append(Text(f"seed {seed} failed and is not scored: {error}", style="bold red"))
    return Group(*parts)
