"""The shape of data each kind of panel needs, checked on a query's result rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dashboards.model import PanelKind, PanelSpec

EPOCH_MS_2000 = 946_684_800_000
"""Any ``..._at`` value below this is not epoch milliseconds."""


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def shape_problems(
    spec: PanelSpec, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> list[str]:
    """What is wrong with ``rows`` for ``spec`` (empty: the panel can show them)."""
    problems: list[str] = []
    if not rows:
        return ["no rows"]
    missing = [c for c in spec.columns if c not in columns]
    if missing:
        problems.append(f"missing columns {missing} (got {list(columns)})")
    for index, column in enumerate(columns):
        if column.endswith("_at"):
            values = [row[index] for row in rows if row[index] is not None]
            if any(not is_number(v) or v < EPOCH_MS_2000 for v in values):
                problems.append(f"{column} is not in epoch milliseconds: {values[:3]}")
    if spec.kind is PanelKind.TIMESERIES:
        if "time" not in columns:
            problems.append(f"no time column in {list(columns)}")
        else:
            t = columns.index("time")
            if not all(row[t] is not None for row in rows):
                problems.append("null time")
            numeric = [
                i for i, c in enumerate(columns)
                if c != "time" and any(is_number(row[i]) for row in rows)
            ]  # fmt: skip
            if not numeric:
                problems.append("no numeric value column")
    elif spec.kind is PanelKind.STAT:
        if len(rows) != 1:
            problems.append(f"{len(rows)} rows, a stat needs one")
        else:
            # InfluxQL answers carry a "time" column (epoch 0 for aggregates): not the value
            values = [v for c, v in zip(columns, rows[0], strict=True) if c != "time"]
            if spec.text_value and not (values and isinstance(values[0], str)):
                problems.append(f"value {values[:1]!r} is not text")
            if not spec.text_value and not any(is_number(v) for v in values):
                problems.append(f"no number in {values!r}")
    return problems
