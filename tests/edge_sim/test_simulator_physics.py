"""Simulated physics of one year of the shipped fleet, checked against the ground truth."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from typing import Any

import numpy as np
import pytest

from edge_sim.behaviour import MIN_LEAD_FRACTION, WARM_UP_PERIODS, Behaviour
from edge_sim.scenario import REFERENCE_U_RATIO
from metrology.fleet import Fleet
from metrology.instrument import ReferenceKind
from metrology.timebase import SECONDS_PER_DAY
from metrology.units import linear_conversion


def correct(history: Any, ts: Any, indication: Any) -> Any:
    """Each indication corrected with the record valid at its time (none valid: unchanged)."""
    corrected = np.array(indication, dtype=float)
    for i, record in enumerate(history.records):
        until = history.records[i + 1].calibrated_at if i + 1 < len(history) else np.inf
        valid = (ts >= record.calibrated_at) & (ts < until)
        corrected[valid] = record.correction.apply(corrected[valid])
    return corrected


def corrected_error(year: Any, fleet: Fleet, instrument_id: str) -> tuple[Any, Any, Any]:
    """(ts, corrected - true, is a measurement of the process) from the reported readings.

    The reported value is converted back to the registered unit and corrected with the
    calibration record valid at each reading's time.
    """
    series = year.series[instrument_id]
    spec = fleet.instruments[instrument_id]
    back = linear_conversion(series.unit, spec.unit)
    history = fleet.calibrations[instrument_id]
    indication = back.scale * series.value + back.offset
    corrected = correct(history, series.ts, indication)
    of_process = np.ones(len(series.ts), dtype=bool)
    if spec.reference.kind is ReferenceKind.CHECK_STANDARD:
        of_process = np.isnan(series.reference)
    error = corrected - year.simulator.true_value(instrument_id, series.ts)
    return series.ts, error, of_process


def test_behaviour_mix(simulated_year: Any) -> None:
    truth = simulated_year.simulator.truth
    mix = Counter(t.behaviour for t in truth.instruments.values())
    assert set(mix) == set(Behaviour)
    assert 0.5 <= mix[Behaviour.STABLE] / len(truth.instruments) <= 0.6


def test_about_70_percent_of_drifters_cross_in_the_second_half(simulated_year: Any) -> None:
    truth = simulated_year.simulator.truth
    drifting = truth.drifting()
    crossing = [t for t in drifting if t.true_oot_at is not None]
    assert 0.55 <= len(crossing) / len(drifting) <= 0.85
    window = truth.end - truth.start
    second_half = [t for t in crossing if t.true_oot_at >= truth.start + 0.5 * window]
    assert len(second_half) >= 0.8 * len(crossing)
    for t in crossing:
        assert t.onset_at is not None
        if t.behaviour is not Behaviour.STEP_SHIFT:
            assert t.true_oot_at - t.onset_at >= MIN_LEAD_FRACTION * window * 0.95


def test_drift_onset_leaves_a_stable_warm_up(simulated_year: Any, shipped_fleet: Fleet) -> None:
    truth = simulated_year.simulator.truth
    for t in truth.drifting():
        if t.onset_at is None:
            continue
        period = shipped_fleet.instruments[t.instrument_id].reporting_period_s
        in_force = shipped_fleet.calibrations[t.instrument_id].valid_at(t.onset_at)
        since = max(truth.start, in_force.calibrated_at if in_force else truth.start)
        assert t.onset_at - since >= WARM_UP_PERIODS * period


def test_true_oot_at_is_where_the_injected_error_crosses_the_limit(
    simulated_year: Any, shipped_fleet: Fleet
) -> None:
    simulator = simulated_year.simulator
    checked = 0
    for t in simulator.truth.out_of_tolerance():
        spec = shipped_fleet.instruments[t.instrument_id]
        period = spec.reporting_period_s
        times = np.array([t.true_oot_at - period, t.true_oot_at])
        error = simulator.injected_error(t.instrument_id, times)
        true = simulator.true_value(t.instrument_id, times)
        inside = [
            lo <= e <= hi
            for e, (lo, hi) in zip(error, (spec.tolerance.limits_at(x) for x in true), strict=True)
        ]
        assert inside == [True, False], t.instrument_id
        # ... and never before: the whole grid up to the crossing stays inside.
        grid = np.arange(np.ceil(simulator.start / period), t.true_oot_at / period) * period
        lower, upper = zip(
            *(spec.tolerance.limits_at(x) for x in simulator.true_value(t.instrument_id, grid)),
            strict=True,
        )
        before = simulator.injected_error(t.instrument_id, grid)
        assert np.all((before >= np.array(lower)) & (before <= np.array(upper)))
        checked += 1
    assert checked >= 5


def test_linear_drifters_drift_at_the_stated_rate(
    simulated_year: Any, shipped_fleet: Fleet
) -> None:
    truth = simulated_year.simulator.truth
    drifters = [t for t in truth.with_behaviour(Behaviour.LINEAR_DRIFT) if t.onset_at is not None]
    assert len(drifters) >= 4
    for t in drifters:
        ts, error, of_process = corrected_error(simulated_year, shipped_fleet, t.instrument_id)
        until = t.restarts_at[0] if t.restarts_at else truth.end
        drifting = of_process & (ts >= t.onset_at) & (ts < until)
        days = (ts[drifting] - t.onset_at) / SECONDS_PER_DAY
        slope, intercept = np.polyfit(days, error[drifting], 1)
        spread = days.std() * np.sqrt(drifting.sum())
        slope_se = t.noise_sigma / spread
        assert abs(slope - t.drift_rate_per_day) < 6 * slope_se + 1e-9, t.instrument_id
        assert abs(intercept) < 6 * t.noise_sigma / np.sqrt(drifting.sum()) * 3
        # Before the onset the error is noise around zero.
        warm = of_process & (ts < t.onset_at)
        assert abs(error[warm].mean()) < 6 * t.noise_sigma / np.sqrt(warm.sum())


def test_stable_instruments_stay_inside_tolerance_with_honest_noise(
    simulated_year: Any, shipped_fleet: Fleet
) -> None:
    truth = simulated_year.simulator.truth
    stable = truth.with_behaviour(Behaviour.STABLE)
    assert len(stable) >= 25
    for t in stable:
        assert t.true_oot_at is None and t.onset_at is None and t.drift_rate_per_day == 0
        spec = shipped_fleet.instruments[t.instrument_id]
        ts, error, of_process = corrected_error(simulated_year, shipped_fleet, t.instrument_id)
        true = simulated_year.simulator.true_value(t.instrument_id, ts)
        limits = np.array([spec.tolerance.limits_at(x) for x in true])
        e = error[of_process]
        assert np.all((e >= limits[of_process, 0]) & (e <= limits[of_process, 1]))
        assert abs(e.mean()) < 6 * t.noise_sigma / np.sqrt(len(e))
        assert e.std() == pytest.approx(t.noise_sigma, rel=0.1)
        u = shipped_fleet.calibrations[t.instrument_id].valid_at(truth.end).standard_uncertainty
        assert 0.5 <= t.noise_sigma / u <= 0.8


def test_a_stuck_instrument_repeats_its_value(simulated_year: Any) -> None:
    stuck = simulated_year.simulator.truth.with_behaviour(Behaviour.STUCK)
    assert stuck
    for t in stuck:
        series = simulated_year.series[t.instrument_id]
        frozen = series.ts >= t.stuck_at
        assert frozen.sum() > 100
        assert np.all(series.value[frozen] == t.stuck_value)
        assert len(np.unique(series.value[~frozen])) > 0.5 * (~frozen).sum()


def test_dropout_windows_have_no_readings(simulated_year: Any, shipped_fleet: Fleet) -> None:
    dropping = simulated_year.simulator.truth.with_behaviour(Behaviour.DROPOUT)
    assert dropping
    for t in dropping:
        period = shipped_fleet.instruments[t.instrument_id].reporting_period_s
        ts = simulated_year.series[t.instrument_id].ts
        assert t.dropout_windows
        for begin, end in t.dropout_windows:
            assert end - begin > 5 * period
            assert not np.any((ts >= begin) & (ts < end))
            assert np.any(ts < begin) and np.any(ts >= end)
        gaps = np.diff(ts)
        assert (gaps > 5 * period).sum() == len(t.dropout_windows)


def test_check_standard_readings_come_about_once_a_day(
    simulated_year: Any, shipped_fleet: Fleet
) -> None:
    simulator = simulated_year.simulator
    days = (simulator.end - simulator.start) / SECONDS_PER_DAY
    checked = [
        t
        for t in simulator.truth.instruments.values()
        if t.reference_kind == ReferenceKind.CHECK_STANDARD.value
        and t.behaviour is not Behaviour.DROPOUT
    ]
    assert len(checked) >= 10
    for t in checked:
        series = simulated_year.series[t.instrument_id]
        is_check = ~np.isnan(series.reference)
        assert 0.9 <= is_check.sum() / days <= 1.1
        assert t.check_every >= 24
        to_reported = linear_conversion(t.unit, t.reported_unit)
        assert np.allclose(series.reference[is_check], to_reported(t.check_nominal))
        u = shipped_fleet.calibrations[t.instrument_id].valid_at(simulator.end).standard_uncertainty
        u_reported = REFERENCE_U_RATIO * u * abs(to_reported.scale)
        assert np.allclose(series.u_reference[is_check], u_reported)
        if t.behaviour is Behaviour.STABLE:
            # The check reading indicates the standard, not the process.
            spec = shipped_fleet.instruments[t.instrument_id]
            back = linear_conversion(t.reported_unit, t.unit)
            history = shipped_fleet.calibrations[t.instrument_id]
            corrected = correct(history, series.ts[is_check], back(series.value[is_check]))
            residual = corrected - t.check_nominal
            lower, upper = spec.tolerance.limits_at(t.check_nominal)
            assert np.all((lower < residual) & (residual < upper))


def test_reference_instruments_report_the_true_value_with_their_uncertainty(
    simulated_year: Any, shipped_fleet: Fleet
) -> None:
    simulator = simulated_year.simulator
    for t in simulator.truth.instruments.values():
        if t.reference_kind != ReferenceKind.REFERENCE_INSTRUMENT.value:
            continue
        series = simulated_year.series[t.instrument_id]
        assert not np.any(np.isnan(series.reference))
        back = linear_conversion(t.reported_unit, t.unit)
        deviation = back(series.reference) - simulator.true_value(t.instrument_id, series.ts)
        u_reference = series.u_reference[0] * abs(back.scale)
        assert deviation.std() == pytest.approx(u_reference, rel=0.1)
        history = shipped_fleet.calibrations[t.instrument_id]
        u = history.valid_at(simulator.end).standard_uncertainty
        assert u_reference == pytest.approx(REFERENCE_U_RATIO * u)


def test_peers_and_unverified_instruments_carry_no_reference(simulated_year: Any) -> None:
    for t in simulated_year.simulator.truth.instruments.values():
        if t.reference_kind in (ReferenceKind.PEER_GROUP.value, ReferenceKind.NONE.value):
            series = simulated_year.series[t.instrument_id]
            assert np.all(np.isnan(series.reference)) and np.all(np.isnan(series.u_reference))


def test_peers_share_timestamps_and_true_values(simulated_year: Any, shipped_fleet: Fleet) -> None:
    groups = {
        s.reference.peer_group
        for s in shipped_fleet.instruments.values()
        if s.reference.kind is ReferenceKind.PEER_GROUP
    }
    simulator = simulated_year.simulator
    for group in groups:
        members = shipped_fleet.peers_of(group)
        healthy = [m for m in members if simulator.truth[m].behaviour is not Behaviour.DROPOUT]
        stamps = [simulated_year.series[m].ts for m in healthy]
        for other in stamps[1:]:
            assert np.array_equal(stamps[0], other)
        values = [simulator.true_value(m, stamps[0]) for m in members]
        for other in values[1:]:
            assert np.array_equal(values[0], other)
        drifting = [m for m in members if simulator.truth[m].behaviour.drifts]
        assert len(drifting) <= 1


def test_timestamps_are_aligned_and_sequences_count_per_gateway(
    simulated_year: Any, shipped_fleet: Fleet
) -> None:
    for key, seqs in simulated_year.gateway_seqs.items():
        assert seqs == list(range(1, len(seqs) + 1)), key
        stamps = simulated_year.gateway_ts[key]
        assert all(a <= b for a, b in pairwise(stamps))
    for instrument_id, series in simulated_year.series.items():
        period = shipped_fleet.instruments[instrument_id].reporting_period_s
        assert np.all(series.ts % period == 0)
        assert series.ts[0] >= simulated_year.simulator.start
        assert series.ts[-1] < simulated_year.simulator.end
    assert max(simulated_year.batch_sizes) <= simulated_year.simulator.batch_size


def test_a_few_instruments_report_in_a_convertible_alternative_unit(
    simulated_year: Any, shipped_fleet: Fleet
) -> None:
    alternative = {
        i: s.unit
        for i, s in simulated_year.series.items()
        if s.unit != shipped_fleet.instruments[i].unit
    }
    assert 1 <= len(alternative) <= 0.2 * len(shipped_fleet.instruments)
    for instrument_id, unit in alternative.items():
        assert simulated_year.simulator.truth[instrument_id].reported_unit == unit
        linear_conversion(unit, shipped_fleet.instruments[instrument_id].unit)


def test_time_versioned_correction_matters(simulated_year: Any, shipped_fleet: Fleet) -> None:
    """Correcting with the newest certificate instead of the one in force leaves a visible bias."""
    simulator = simulated_year.simulator
    biased = 0
    for t in simulator.truth.with_behaviour(Behaviour.STABLE):
        history = shipped_fleet.calibrations[t.instrument_id]
        if len(history) < 2 or not simulator.start < history.records[1].calibrated_at:
            continue
        series = simulated_year.series[t.instrument_id]
        back = linear_conversion(t.reported_unit, t.unit)
        before = series.ts < history.records[1].calibrated_at
        if t.reference_kind == ReferenceKind.CHECK_STANDARD.value:
            before &= np.isnan(series.reference)
        indication = back(series.value[before])
        newest = history.records[1].correction
        error = (
            newest.gain * indication
            + newest.offset
            - simulator.true_value(t.instrument_id, series.ts[before])
        )
        if abs(error.mean()) > 6 * t.noise_sigma / np.sqrt(before.sum()):
            biased += 1
    assert biased >= 1
