"""`step`: correction valid at the reading's time, residuals, detectors, health and alerts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from step_factories import (
    CALIBRATED_AT,
    HOUR,
    MPE,
    U_CAL,
    days,
    make_record,
    make_spec,
    readings_with_error,
)

from metrology.calibration import CalibrationHistory
from metrology.health import Status
from metrology.instrument import ReferenceKind
from stream_processors.context import InstrumentContext
from stream_processors.describe import describe
from stream_processors.policy import ProcessingPolicy
from stream_processors.state import InstrumentState
from stream_processors.step import assess_clock, step

NOISE = 0.6 * U_CAL / 2  # 0.6 u


@pytest.fixture
def context() -> InstrumentContext:
    return InstrumentContext(make_spec(), CalibrationHistory([make_record()]), ProcessingPolicy())


def run(context: InstrumentContext, readings):
    state = InstrumentState()
    assessments, changes = [], []
    for reading in readings:
        state, assessment, change = step(state, reading, context)
        assessments.append(assessment)
        if change is not None:
            changes.append(change)
    return state, assessments, changes


def test_correction_applies_the_record_valid_at_the_readings_time() -> None:
    old, new = (
        make_record("CAL-1", offset=0.3, gain=1.01),
        make_record("CAL-2", at=CALIBRATED_AT + days(100), offset=-0.2, gain=0.99),
    )
    context = InstrumentContext(make_spec(), CalibrationHistory([new, old]), ProcessingPolicy())
    before = readings_with_error(np.zeros(1), old, start=CALIBRATED_AT + days(99))
    after = readings_with_error(np.zeros(1), new, start=CALIBRATED_AT + days(101))
    _, (a, b), _ = run(context, before + after)
    assert (a.certificate_id, b.certificate_id) == ("CAL-1", "CAL-2")
    assert a.corrected == pytest.approx(50.0) and b.corrected == pytest.approx(50.0)
    assert a.residual == pytest.approx(0.0, abs=1e-12)
    assert a.u_residual == pytest.approx(math.hypot(U_CAL / 2, 0.006))


def test_step_is_pure(context: InstrumentContext) -> None:
    state = InstrumentState()
    reading = readings_with_error(np.array([0.01]), context.calibrations.records[0])[0]
    first = step(state, reading, context)
    second = step(state, reading, context)
    assert first == second
    assert state == InstrumentState()


def test_stable_instrument_stays_ok_for_a_year_of_hourly_residuals(
    context: InstrumentContext,
) -> None:
    errors = np.random.default_rng(11).normal(0.0, NOISE, 24 * 330)
    state, assessments, changes = run(
        context, readings_with_error(errors, context.calibrations.records[0])
    )
    assert state.first_drift_at is None
    assert state.status in (Status.OK, Status.CAL_DUE_SOON)
    assert [c.status for c in changes] in ([], [Status.CAL_DUE_SOON])
    assert assessments[-1].ewma is not None and assessments[-1].cusum_high is not None


def test_linear_drift_is_flagged_well_before_it_leaves_tolerance(
    context: InstrumentContext,
) -> None:
    hours = np.arange(24 * 200)
    drift = np.where(hours > 24 * 20, (hours - 24 * 20) * (1.5 * MPE / (24 * 150)), 0.0)
    errors = drift + np.random.default_rng(5).normal(0.0, NOISE, hours.size)
    state, _, changes = run(context, readings_with_error(errors, context.calibrations.records[0]))
    true_oot = CALIBRATED_AT + HOUR + float(np.argmax(drift > MPE)) * HOUR
    assert state.first_drift_at is not None and state.first_drift_at < true_oot - days(20)
    statuses = [c.status for c in changes]
    assert statuses[0] in (Status.DRIFTING, Status.AT_RISK)
    assert Status.OUT_OF_TOLERANCE in statuses
    oot = next(c for c in changes if c.status is Status.OUT_OF_TOLERANCE)
    assert oot.numbers["residual"] > MPE or oot.numbers["residual"] < -MPE
    assert oot.numbers["decision_rule"] == "simple"
    assert state.tracking.predicted_oot_at is not None
    # A month before it happens, the best estimate extrapolates the drift since its change
    # point (not the flat record before it) and lands within two days (the whole-period fit
    # is almost eight days off here).
    month_before = int((true_oot - days(30) - CALIBRATED_AT) // HOUR)
    earlier, _, _ = run(
        context, readings_with_error(errors[:month_before], context.calibrations.records[0])
    )
    estimated = earlier.tracking.estimated_oot_at
    assert estimated is not None and abs(estimated - true_oot) < days(2)


def test_guard_band_rule_judges_out_of_tolerance_inside_the_limit() -> None:
    from metrology.conformity import DecisionRule

    strict = InstrumentContext(
        make_spec(),
        CalibrationHistory([make_record()]),
        ProcessingPolicy(decision_rule=DecisionRule.guard_band_u()),
    )
    simple = InstrumentContext(make_spec(), CalibrationHistory([make_record()]), ProcessingPolicy())
    record = strict.calibrations.records[0]
    near_limit = readings_with_error(
        np.array([MPE - 0.02]), record
    )  # inside, within U of the limit
    (guarded, _, _), (plain, _, _) = (
        step(InstrumentState(), near_limit[0], c) for c in (strict, simple)
    )
    assert guarded.status is Status.OUT_OF_TOLERANCE
    assert plain.status is Status.OK
    snapshot = describe(guarded, strict, near_limit[0].ts)
    assert snapshot.numbers["decision"] == "CONDITIONAL_PASS"
    assert snapshot.numbers["decision_rule"] == "guard_band_u"
    assert snapshot.numbers["guard_band"] == pytest.approx(2 * math.hypot(U_CAL / 2, 0.006))


def test_due_dates_and_overdue(context: InstrumentContext) -> None:
    record = context.calibrations.records[0]
    soon = readings_with_error(np.zeros(1), record, start=record.due_at - days(10))
    late = readings_with_error(np.zeros(1), record, start=record.due_at + days(2))
    s1, _, _ = step(InstrumentState(), soon[0], context)
    s2, _, change = step(s1, late[0], context)
    assert s1.status is Status.CAL_DUE_SOON
    assert s2.status is Status.CAL_OVERDUE
    assert change is not None and change.previous is Status.CAL_DUE_SOON
    assert "2 d overdue" in change.reasons[0]


def test_no_reference_means_unverified() -> None:
    context = InstrumentContext(
        make_spec(ReferenceKind.NONE), CalibrationHistory([make_record()]), ProcessingPolicy()
    )
    reading = readings_with_error(np.zeros(1), context.calibrations.records[0])[0]._replace(
        reference=None, u_reference=None
    )
    state, assessment, change = step(InstrumentState(), reading, context)
    assert state.status is Status.UNVERIFIED and assessment.residual is None
    assert change is not None and "drift cannot be judged" in change.reasons[0]


def test_offline_on_the_clock_and_back(context: InstrumentContext) -> None:
    record = context.calibrations.records[0]
    first, later = readings_with_error(np.zeros(2), record, period=days(1))
    state, _, _ = step(InstrumentState(), first, context)
    allowed = 5 * HOUR + context.policy.offline_grace_s  # five periods plus the delivery grace
    still, change = assess_clock(state, context, first.ts + allowed - 1)
    assert change is None and still.status is Status.OK
    offline, change = assess_clock(state, context, first.ts + allowed + 1)
    assert offline.status is Status.OFFLINE and change is not None
    assert f"no reading for {(allowed + 1) / HOUR:.1f} h" in change.reasons[0]
    back, _, change = step(offline, later, context)
    assert back.status is Status.OK and change is not None and change.previous is Status.OFFLINE


def test_a_late_reading_is_corrected_but_moves_no_detector(context: InstrumentContext) -> None:
    record = context.calibrations.records[0]
    a, b = readings_with_error(np.array([0.0, 0.5]), record)
    state, _, _ = step(InstrumentState(), b, context)
    after, assessment, change = step(state, a, context)
    assert assessment.corrected == pytest.approx(50.0) and assessment.residual is None
    assert after.tracking == state.tracking and after.readings == 2 and change is None


def test_the_decision_rule_is_set_per_tenant_and_per_instrument(example_fleet) -> None:  # type: ignore[no-untyped-def]
    """The fleet file's rule (tenant default, instrument override) is the one each decision uses."""
    import copy

    import yaml

    from calstream.settings import example_fleet_path
    from metrology.errors import FleetError
    from metrology.fleet import load_fleet
    from stream_processors.runner import FleetProcessor

    document = yaml.safe_load(example_fleet_path().read_text())
    acme = next(t for t in document["tenants"] if t["id"] == "acme")
    acme["decision_rule"] = "guard_band_u"
    first = acme["sites"][0]["instruments"][0]
    first["decision_rule"] = "risk:0.01"
    processor = FleetProcessor(load_fleet(document), ProcessingPolicy())
    rules = {i: c.policy.decision_rule.name for i, c in processor.contexts.items()}
    assert rules[first["id"]] == "risk:0.01"
    acme_ids = [i["id"] for s in acme["sites"] for i in s["instruments"]]
    assert {rules[i] for i in acme_ids if i != first["id"]} == {"guard_band_u"}
    others = [i for i in rules if i not in acme_ids]
    assert others and {rules[i] for i in others} == {"simple"}

    broken = copy.deepcopy(document)
    broken["tenants"][0]["decision_rule"] = "coin-toss"
    with pytest.raises(FleetError, match="decision rule"):
        load_fleet(broken)


def test_page_hinkley_runs_when_the_policy_asks_and_flags_a_slow_trend() -> None:
    """Opt-in third detector: designed like the CUSUM (delta = K, threshold = H), it flags a
    slow drift; with the default policy it stays off and its state stays empty."""
    import dataclasses

    record = make_record()
    policy = dataclasses.replace(ProcessingPolicy(), page_hinkley=True)
    with_ph = InstrumentContext(make_spec(), CalibrationHistory([record]), policy)
    without = InstrumentContext(make_spec(), CalibrationHistory([record]), ProcessingPolicy())
    rng = np.random.default_rng(7)
    hours = np.arange(24 * 60)
    errors = np.where(hours > 24 * 10, 0.0015 * (hours - 24 * 10) / 24, 0.0)
    errors = errors + rng.normal(0.0, U_CAL / 4, len(hours))
    readings = readings_with_error(errors, record)
    on, _, _ = run(with_ph, readings)
    off, _, _ = run(without, readings)
    chart, baseline = on.tracking.page_hinkley_chart, on.tracking.baseline
    assert chart is not None and baseline is not None
    assert chart.delta == on.tracking.cusum_chart.reference_k
    assert chart.threshold == on.tracking.cusum_chart.decision_h
    assert on.tracking.page_hinkley.n == on.tracking.cusum.n  # every residual after warm-up
    assert on.tracking.page_hinkley.high > chart.threshold * baseline.sigma
    assert on.tracking.drift_since is not None
    assert off.tracking.page_hinkley_chart is None and off.tracking.page_hinkley.n == 0
    snapshot = describe(on, with_ph, readings[-1].ts)
    assert any("Page-Hinkley +" in r for r in snapshot.reasons)
