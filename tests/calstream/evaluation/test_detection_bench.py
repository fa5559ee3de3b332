"""`calstream detect-bench`: scoring helpers on a hand-built truth, and a small real run."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from calstream.cli import app
from calstream.evaluation.detection.goals import goals
from calstream.evaluation.detection.run import SeedCase, run_seed
from edge_sim.behaviour import Behaviour
from edge_sim.scoring import (
    ALL,
    FirstFlag,
    FirstPrediction,
    InstrumentOutcome,
    outcomes_of,
    quantile,
    score,
    score_detection,
)
from edge_sim.truth import GroundTruth, InstrumentTruth
from metrology.assessment import Assessment, StatusChange
from metrology.reading import Reading
from metrology.timebase import SECONDS_PER_DAY
from stream_processors import keyed
from stream_processors.context import InstrumentContext
from stream_processors.state import InstrumentState
from stream_processors.step import step

DAY = SECONDS_PER_DAY
START = 1_750_000_000.0


def _at(days: float) -> float:
    return START + days * DAY


def _instrument(
    instrument_id: str,
    behaviour: Behaviour,
    reference_kind: str = "check_standard",
    onset: float | None = None,
    oot: float | None = None,
) -> InstrumentTruth:
    return InstrumentTruth(
        instrument_id=instrument_id,
        tenant="acme",
        site="north",
        gateway="gw1",
        behaviour=behaviour,
        reference_kind=reference_kind,
        unit="degC",
        reported_unit="degC",
        noise_sigma=0.01,
        onset_at=None if onset is None else _at(onset),
        true_oot_at=None if oot is None else _at(oot),
    )


@pytest.fixture
def hand_built() -> list[InstrumentOutcome]:
    """A year (365.25 days) with one instrument of each case the scoring tells apart."""
    instruments = [
        _instrument("lin-early", Behaviour.LINEAR_DRIFT, onset=10, oot=50),
        _instrument("lin-missed", Behaviour.LINEAR_DRIFT, "reference_instrument", 20, 80),
        _instrument("rw-late", Behaviour.RANDOM_WALK_DRIFT, "peer_group", 10, 60),
        _instrument("step-within", Behaviour.STEP_SHIFT, onset=30),
        _instrument("step-out", Behaviour.STEP_SHIFT, onset=40, oot=40),
        _instrument("stable-flagged", Behaviour.STABLE),
        _instrument("stable-quiet", Behaviour.STABLE, "reference_instrument"),
        _instrument("stable-blind", Behaviour.STABLE, "none"),
        _instrument("drift-blind", Behaviour.LINEAR_DRIFT, "none", 10, 50),
        _instrument("stuck", Behaviour.STUCK),
    ]
    truth = GroundTruth(
        seed=3,
        start=START,
        end=_at(365.25),
        instruments={i.instrument_id: i for i in instruments},
    )
    flags = {
        "lin-early": FirstFlag(_at(40), "DRIFTING/CUSUM"),  # 10 days before OOT
        "rw-late": FirstFlag(_at(65), "OUT_OF_TOLERANCE"),
        "step-within": FirstFlag(_at(33), "DRIFTING/EWMA"),
        "step-out": FirstFlag(_at(40), "OUT_OF_TOLERANCE"),
        "stable-flagged": FirstFlag(_at(70), "DRIFTING/EWMA", certified=False),
        "stable-blind": FirstFlag(_at(70), "DRIFTING/EWMA"),  # no reference: not scored
        "drift-blind": FirstFlag(_at(45), "DRIFTING/EWMA"),
        "stuck": FirstFlag(_at(5), "OUT_OF_TOLERANCE"),
    }
    predictions = {
        "lin-early": FirstPrediction(_at(30), _at(54)),  # 4 days late, 20 days left: 20 %
        "rw-late": FirstPrediction(_at(62), _at(70)),  # made after the true OOT
    }
    # lin-missed had no certificate in force when it left tolerance
    return outcomes_of(truth, flags, predictions, uncertified_at_oot=frozenset({"lin-missed"}))


def test_scoring_helpers_give_the_known_figures(hand_built: list[InstrumentOutcome]) -> None:
    s = score(hand_built)
    linear = s.kinds[Behaviour.LINEAR_DRIFT.value]
    assert (linear.leaving_tolerance, linear.detected_before_oot, linear.missed) == (2, 1, 1)
    assert linear.warned_before_oot == 1
    assert linear.detection_rate == 0.5
    assert linear.delay_days_median == pytest.approx(30.0)  # onset day 10 -> flag day 40
    assert linear.lead_days_median == pytest.approx(10.0)
    assert (linear.predicted_before_oot, linear.never_predicted) == (1, 1)
    assert linear.never_predicted_uncertified == 1
    assert linear.date_error_median == pytest.approx(0.2)
    assert linear.date_bias_median == pytest.approx(0.2)
    walk = s.kinds[Behaviour.RANDOM_WALK_DRIFT.value]
    assert (walk.leaving_tolerance, walk.detected_late, walk.predicted_after_oot) == (1, 1, 1)
    assert walk.delay_days_median == pytest.approx(55.0)
    assert walk.date_error_median is None
    assert walk.never_predicted_uncertified == 0
    step = s.kinds[Behaviour.STEP_SHIFT.value]
    assert (step.leaving_tolerance, step.within_tolerance, step.within_tolerance_flagged) == (
        0,
        1,
        1,
    )
    assert step.detection_rate is None
    assert step.delay_days_median == pytest.approx(3.0)
    overall = s.kinds[ALL]
    assert overall.leaving_tolerance == 3
    assert (overall.detected_before_oot, overall.detected_late, overall.missed) == (1, 1, 1)
    assert overall.detection_rate == pytest.approx(1 / 3)
    assert overall.delay_days_median == pytest.approx(30.0)
    assert overall.delay_days_p90 == pytest.approx(50.0)  # of 3, 30, 55
    assert overall.first_flag_causes == {"DRIFTING/CUSUM": 1, "OUT_OF_TOLERANCE": 1}
    assert (s.instant_shifts, s.instant_shifts_flagged, s.unobservable_drifts) == (1, 1, 1)
    assert (s.stable_instruments, s.stable_flagged) == (2, 1)
    assert s.stable_instrument_years == pytest.approx(2.0)
    assert s.false_alarms_per_instrument_year == pytest.approx(0.5)
    assert s.stable_flagged_fraction == pytest.approx(0.5)
    assert s.false_alarm_causes == {"DRIFTING/EWMA": 1}
    assert s.false_alarms_without_certificate == 1
    assert s.false_alarms_by_reference == {
        "check_standard": [1, 1],
        "reference_instrument": [0, 1],
    }
    targets = goals(s)
    assert targets["detection_rate_before_oot"]["met"] is False
    assert targets["false_alarms_per_instrument_year"]["met"] is False
    assert targets["date_error_median"]["value"] == pytest.approx(0.2)
    assert targets["date_error_median"]["met"] is False


def test_flags_given_as_times_are_scored_too() -> None:
    truth = GroundTruth(
        seed=1,
        start=START,
        end=_at(100),
        instruments={
            "a": _instrument("a", Behaviour.LINEAR_DRIFT, onset=10, oot=50),
            "b": _instrument("b", Behaviour.STABLE),
        },
    )
    s = score(outcomes_of(truth, {"a": _at(49), "b": None}))
    assert s.kinds[ALL].detected_before_oot == 1
    assert s.kinds[ALL].lead_days_median == pytest.approx(1.0)
    assert s.stable_instrument_years == pytest.approx(100 / 365.25)
    assert s.false_alarms_per_instrument_year == 0.0


@pytest.mark.parametrize("q", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_quantile_matches_numpy(q: float) -> None:
    values = [5.0, 1.0, 7.5, 3.0, 10.0, 2.0]
    assert quantile(values, q) == pytest.approx(float(np.quantile(values, q)))
    assert quantile([], q) is None


def test_run_seed_finds_the_exact_first_flag_and_prediction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reference: watch every `step` call the processor makes, in the same batches."""
    flags: dict[str, float] = {}
    predictions: dict[str, tuple[float, float]] = {}
    original = step

    def watched(
        state: InstrumentState, reading: Reading, context: InstrumentContext
    ) -> tuple[InstrumentState, Assessment, StatusChange | None]:
        result = original(state, reading, context)
        new = result[0]
        if new.first_drift_at is not None:
            flags.setdefault(reading.instrument_id, new.first_drift_at)
        if new.tracking.estimated_oot_at is not None:
            # The scored date is the first best estimate (the fitted line's crossing).
            predictions.setdefault(
                reading.instrument_id, (reading.ts, new.tracking.estimated_oot_at)
            )
        return result

    monkeypatch.setattr(keyed, "step", watched)
    run = run_seed(SeedCase(seed=2, instruments=60, sim_days=45))
    assert run.readings > 0 and run.rejected == 0 and run.failed == 0
    assert run.first_predictions, "the case must exercise the prediction path"
    assert {i: f.at for i, f in run.first_flags.items()} == flags
    assert {
        i: (p.made_at, p.predicted_oot_at) for i, p in run.first_predictions.items()
    } == predictions
    # The recorded flag times, scored through the demo summary, give the same counts.
    reference = score_detection(run.truth, flags)
    s = score(outcomes_of(run.truth, run.first_flags, run.first_predictions))
    overall = s.kinds[ALL]
    assert overall.leaving_tolerance == reference.injected_drifts
    assert overall.detected_before_oot == reference.detected_before_oot
    assert overall.detected_late == reference.detected_late
    assert overall.missed == reference.missed
    assert (s.stable_instruments, s.stable_flagged) == (
        reference.stable_instruments,
        reference.false_alarms,
    )
    assert (s.instant_shifts, s.instant_shifts_flagged) == (
        reference.instant_shifts,
        reference.instant_shifts_flagged,
    )
    assert overall.within_tolerance == reference.drifts_within_tolerance


@pytest.fixture(scope="module")
def small_run() -> dict[str, Any]:
    result = CliRunner().invoke(
        app,
        [
            "detect-bench",
            "--seeds",
            "2",
            "--instruments",
            "60",
            "--sim-days",
            "60",
            "--workers",
            "2",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return document


def test_small_run_json_has_the_expected_keys(small_run: dict[str, Any]) -> None:
    assert small_run["seeds"] == [1, 2]
    assert small_run["fleet_seeds"] == [1001, 1002]
    assert (small_run["instruments"], small_run["sim_days"]) == (60, 60.0)
    assert small_run["readings"] > 500_000
    assert small_run["rejected"] == 0 and small_run["failed"] == 0
    assert set(small_run["kinds"]) == {"linear_drift", "random_walk_drift", "step_shift", "all"}
    assert set(small_run["goals"]) == {
        "detection_rate_before_oot",
        "false_alarms_per_instrument_year",
        "stable_flagged_fraction",
        "date_error_median",
    }
    for key in (
        "instant_shifts",
        "stable_instruments",
        "stable_flagged",
        "false_alarm_causes",
        "false_alarms_without_certificate",
    ):
        assert key in small_run


def test_small_run_counts_add_up(small_run: dict[str, Any]) -> None:
    kinds = small_run["kinds"]
    for name, k in kinds.items():
        assert (
            k["detected_before_oot"] + k["detected_late"] + k["missed"] == (k["leaving_tolerance"])
        ), name
        assert k["leaving_tolerance"] + k["within_tolerance"] == k["drifts"], name
        assert k["warned_before_oot"] <= k["detected_before_oot"], name
        assert (
            k["predicted_before_oot"] + k["predicted_after_oot"] + k["never_predicted"]
            == k["leaving_tolerance"]
        ), name
        for rate in ("detection_rate", "within_tolerance_flagged_rate"):
            assert k[rate] is None or 0.0 <= k[rate] <= 1.0, (name, rate)
        for low, high in (
            ("delay_days_median", "delay_days_p90"),
            ("lead_days_median", "lead_days_p90"),
            ("date_error_median", "date_error_p90"),
        ):
            if k[low] is not None:
                assert 0.0 <= k[low] <= k[high], (name, low)
    for field in ("drifts", "leaving_tolerance", "detected_before_oot", "missed"):
        assert kinds["all"][field] == sum(
            kinds[n][field] for n in ("linear_drift", "random_walk_drift", "step_shift")
        )
    assert kinds["step_shift"]["leaving_tolerance"] == 0  # those are the instant shifts
    assert kinds["all"]["leaving_tolerance"] > 0  # the run scores real drifts
    assert kinds["all"]["detection_rate"] == pytest.approx(
        kinds["all"]["detected_before_oot"] / kinds["all"]["leaving_tolerance"]
    )


def test_small_run_false_alarm_rate_comes_from_the_counts(small_run: dict[str, Any]) -> None:
    stable = small_run["stable_instruments"]
    assert stable > 0
    years = small_run["stable_instrument_years"]
    assert years == pytest.approx(stable * 60 / 365.25)
    assert small_run["false_alarms_per_instrument_year"] == pytest.approx(
        small_run["stable_flagged"] / years
    )
    assert small_run["stable_flagged_fraction"] == pytest.approx(
        small_run["stable_flagged"] / stable
    )
    assert 0.0 <= small_run["stable_flagged_fraction"] <= 1.0
    assert sum(small_run["false_alarm_causes"].values()) == small_run["stable_flagged"]
    assert 0 <= small_run["false_alarms_without_certificate"] <= small_run["stable_flagged"]
    assert (
        sum(f for f, _ in small_run["false_alarms_by_reference"].values())
        == (small_run["stable_flagged"])
    )
    assert sum(n for _, n in small_run["false_alarms_by_reference"].values()) == stable
