"""The instrument health model of DESIGN.md.

An instrument can be in several conditions at once (drifting *and* due soon, say); its status is
the most severe of them, and the others are kept as reasons.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Status(StrEnum):
    """Health of one instrument, most severe first in :data:`SEVERITY`."""

    OK = "OK"
    DRIFTING = "DRIFTING"
    """A drift detector signals; the instrument is still within tolerance."""
    AT_RISK = "AT_RISK"
    """Predicted out of tolerance before its calibration due date."""
    OUT_OF_TOLERANCE = "OUT_OF_TOLERANCE"
    """The conformity decision fails under the configured decision rule."""
    CAL_DUE_SOON = "CAL_DUE_SOON"
    CAL_OVERDUE = "CAL_OVERDUE"
    OFFLINE = "OFFLINE"
    """No data within the expected reporting period."""
    UNVERIFIED = "UNVERIFIED"
    """No reference to judge drift: only due-date and data-quality checks apply."""


SEVERITY: tuple[Status, ...] = (
    Status.OUT_OF_TOLERANCE,
    Status.OFFLINE,
    Status.CAL_OVERDUE,
    Status.AT_RISK,
    Status.DRIFTING,
    Status.CAL_DUE_SOON,
    Status.UNVERIFIED,
    Status.OK,
)
"""Most severe first: what an operator should act on before anything else."""

_RANK = {status: rank for rank, status in enumerate(SEVERITY)}

DRIFT_CONDITIONS = frozenset({Status.DRIFTING, Status.AT_RISK, Status.OUT_OF_TOLERANCE})
"""Conditions that say the instrument's error has moved (used to score drift detection)."""


def severity_rank(status: Status) -> int:
    """0 for the most severe status, larger for milder ones."""
    return _RANK[status]


def worst(conditions: Iterable[Status]) -> Status:
    """The most severe of ``conditions``; OK when there are none."""
    best_rank = _RANK[Status.OK]
    for condition in conditions:
        rank = _RANK[condition]
        if rank < best_rank:
            best_rank = rank
    return SEVERITY[best_rank]
