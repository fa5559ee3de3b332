"""The worked example of ``docs/metrology.md``, end to end through `step`: the page's numbers.

A temperature transmitter, MPE +/-0.20 degC, certificate CAL-2026-0001 of 2026-01-01 (offset
+0.30 degC, gain 1.01, U = 0.05 degC at k = 2, interval 365 d, as found +0.05 degC), hourly
readings against a co-located reference (u = 0.006 degC), scatter 0.012 degC, decision rule
guard_band_u. From day 60 it drifts by +2 mdegC per day: its true error leaves tolerance on
day 160 (2026-06-10).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from metrology.calibration import CalibrationHistory, CalibrationRecord, Correction
from metrology.conformity import DecisionRule
from metrology.health import Status
from metrology.instrument import InstrumentSpec, ReferenceKind, ReferenceRelation, Tolerance
from metrology.reading import Reading
from metrology.timebase import SECONDS_PER_DAY
from stream_processors.context import InstrumentContext
from stream_processors.describe import describe
from stream_processors.policy import ProcessingPolicy
from stream_processors.state import InstrumentState
from stream_processors.step import step

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
ID = "acme-north-TT-001"
RULE = DecisionRule.guard_band_u()
RECORD = CalibrationRecord(
    ID, "CAL-2026-0001", T0, Correction(0.30, 1.01), 0.05, 2.0, 365.0, as_found_error=0.05
)
SPEC = InstrumentSpec(
    ID, "acme", "north", "gw-01", "temperature", "degC", Tolerance(-0.2, 0.2), 3600.0,
    ReferenceRelation(ReferenceKind.REFERENCE_INSTRUMENT), decision_rule=RULE,
)  # fmt: skip
CONTEXT = InstrumentContext(
    SPEC, CalibrationHistory([RECORD]), dataclasses.replace(ProcessingPolicy(), decision_rule=RULE)
)


def day_of(ts: float) -> float:
    return (ts - T0) / SECONDS_PER_DAY


@pytest.fixture(scope="module")
def story() -> dict[str, object]:
    rng = np.random.default_rng(2026)
    state = InstrumentState()
    seen: dict[str, object] = {"changes": []}
    for i in range(24 * 175):
        ts = T0 + 3600.0 * (i + 1)
        true_error = 0.002 * max(0.0, day_of(ts) - 60.0)
        indication = (50.0 + true_error + rng.normal(0.0, 0.012) - 0.30) / 1.01
        reading = Reading("acme", "north", "gw-01", ID, ts, indication, "degC", i + 1, 50.0, 0.006)
        state, assessment, change = step(state, reading, CONTEXT)
        if i == 0:
            seen["first"] = (reading, assessment, describe(state, CONTEXT, ts))
        if change is not None:
            seen["changes"].append(change)  # type: ignore[union-attr]
        tracking = state.tracking
        if tracking.baseline is not None and "design" not in seen:
            seen["design"] = tracking
        if tracking.estimated_oot_at is not None and "estimate" not in seen:
            seen["estimate"] = (ts, state, describe(state, CONTEXT, ts))
        if day_of(ts) >= 120.0 and "day120" not in seen:
            seen["day120"] = describe(state, CONTEXT, ts)
    return seen


def test_first_reading_correction_residual_and_decision(story: dict[str, object]) -> None:
    reading, assessment, snapshot = story["first"]  # type: ignore[misc]
    assert assessment.corrected == pytest.approx(1.01 * reading.value + 0.30)
    assert assessment.residual == pytest.approx(assessment.corrected - 50.0)
    assert assessment.u_residual == pytest.approx(math.hypot(0.025, 0.006))  # 0.0257 degC
    numbers = snapshot.numbers
    assert numbers["guard_band"] == pytest.approx(2 * math.hypot(0.025, 0.006))  # w = U
    assert numbers["decision"] == "PASS"
    assert numbers["probability_of_conformity"] == pytest.approx(1.0, abs=1e-9)
    assert numbers["decision_rule"] == "guard_band_u"


def test_detector_design_from_the_warm_up(story: dict[str, object]) -> None:
    tracking = story["design"]
    u_e = math.hypot(0.025, 0.006)
    assert tracking.shift_to_detect == pytest.approx(2 * u_e)  # max(2 u(e), 25 % of 0.2, sigma)
    assert tracking.baseline.sigma >= 0.5 * u_e
    assert tracking.cusum_chart.reference_k * tracking.baseline.sigma == pytest.approx(u_e)


def test_drifting_then_at_risk_then_out_of_tolerance(story: dict[str, object]) -> None:
    changes = story["changes"]
    sequence = [(c.previous, c.status) for c in changes]
    assert sequence == [
        (Status.OK, Status.DRIFTING),
        (Status.DRIFTING, Status.AT_RISK),
        (Status.AT_RISK, Status.OUT_OF_TOLERANCE),
    ]
    drifting, at_risk, oot = (day_of(c.ts) for c in changes)
    assert 65.0 < drifting < 80.0  # about two weeks after the drift began on day 60
    assert drifting < at_risk < 110.0
    assert 110.0 < oot < 160.0  # the guard band refuses readings before the true error leaves


def test_best_estimate_of_the_date_and_the_band(story: dict[str, object]) -> None:
    made_at, state, snapshot = story["estimate"]  # type: ignore[misc]
    tracking = state.tracking
    left = 160.0 - day_of(made_at)
    estimated = day_of(tracking.estimated_oot_at)
    # the page: made on day 94.0 for day 160.4 +/- 6.8 d, the onset on day 60.0
    assert day_of(made_at) == pytest.approx(94.0, abs=0.1)
    assert estimated == pytest.approx(160.4, abs=0.1)
    assert tracking.estimate_u_days == pytest.approx(6.8, abs=0.1)
    # within 10 % of the time left, and within the stated uncertainty, itself <= 15 % of it
    assert abs(estimated - 160.0) < 0.1 * left
    assert tracking.estimate_u_days <= 0.15 * (estimated - day_of(made_at))
    assert abs(estimated - 160.0) < 2.0 * tracking.estimate_u_days
    # the two-phase fit finds the onset of day 60 (to a few days)
    assert day_of(tracking.drift_onset_at) == pytest.approx(60.0, abs=0.5)
    # the estimate is before the due date (day 365): AT_RISK, and the reason says so
    assert state.status is Status.AT_RISK
    assert any("best estimate 2026-06" in r for r in snapshot.reasons)
    numbers = snapshot.numbers
    assert numbers["estimated_oot_u_days"] == tracking.estimate_u_days
    assert numbers["drift_onset_at"] == tracking.drift_onset_at
    assert "d ahead at +0.00199/d since the onset" in numbers["estimate_note"]
    if tracking.predicted_oot_at is not None:  # the band's date, when there is one, is earlier
        assert tracking.predicted_oot_at < tracking.estimated_oot_at


def test_interval_recommendations_on_day_120(story: dict[str, object]) -> None:
    numbers = story["day120"].numbers  # type: ignore[union-attr]
    assert numbers["fit_basis"] == "since the change point"
    assert numbers["drift_rate"] == pytest.approx(0.002, rel=0.05)
    assert numbers["drift_rate_since_calibration"] < numbers["drift_rate"]
    assert 120.0 < numbers["recommended_interval_days"] < 365.0
    assert numbers["staircase_interval_days"] == pytest.approx(456.25)
    assert numbers["hours_in_use"] == pytest.approx(24 * 120 - 1)
