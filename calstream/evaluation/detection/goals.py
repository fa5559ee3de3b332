"""calstream's goals for drift detection, and whether a benchmark's figures meet them.

The goals (docs/metrology.md, "Detection quality"):

- at least 95 % of the drifts that leave tolerance are flagged before they do;
- at most 1 % false alarms: flagged stable instruments per stable instrument-year, and the share
  of stable instruments flagged;
- the median error of the first best estimate of the out-of-tolerance date is at most 10 % of
  the time that was left when it was made.
"""

from __future__ import annotations

from edge_sim.scoring import ALL, BenchScore

GOAL_DETECTION_RATE = 0.95
"""At least this share of the drifts leaving tolerance is flagged before they do."""
GOAL_FALSE_ALARMS = 0.01
"""At most this many false alarms per stable instrument-year (and share of stable flagged)."""
GOAL_DATE_ERROR = 0.10
"""Median error of the first best estimate of the OOT date, relative to the time then left."""


def goals(score: BenchScore) -> dict[str, dict[str, object]]:
    """Each goal beside the measured figure: ``{"value", "goal", "met"}`` per figure."""
    overall = score.kinds[ALL]
    rate = overall.detection_rate
    per_year = score.false_alarms_per_instrument_year
    fraction = score.stable_flagged_fraction
    error = overall.date_error_median
    rows: list[tuple[str, float | None, str, bool | None]] = [
        (
            "detection_rate_before_oot",
            rate,
            f">= {GOAL_DETECTION_RATE:.0%}",
            None if rate is None else rate >= GOAL_DETECTION_RATE,
        ),
        (
            "false_alarms_per_instrument_year",
            per_year,
            f"<= {GOAL_FALSE_ALARMS:.0%}",
            None if per_year is None else per_year <= GOAL_FALSE_ALARMS,
        ),
        (
            "stable_flagged_fraction",
            fraction,
            f"<= {GOAL_FALSE_ALARMS:.0%}",
            None if fraction is None else fraction <= GOAL_FALSE_ALARMS,
        ),
        (
            "date_error_median",
            error,
            f"<= {GOAL_DATE_ERROR:.0%} of the time left",
            None if error is None else error <= GOAL_DATE_ERROR,
        ),
    ]
    return {name: {"value": v, "goal": g, "met": m} for name, v, g, m in rows}
