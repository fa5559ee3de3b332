"""The per-instrument processing step: the one place where the metrology is applied to a reading.

``step(state, reading, context) -> (state, assessment, change)`` is pure: the embedded runner and
the Faust agents call exactly this function. For every reading it

1. applies the correction of the calibration valid at the reading's time (METROLOGY.md,
   "Calibration state is time-versioned"); a new calibration starts a new detection period;
2. forms the error of indication against the reference, ``e = x - r`` with
   ``u(e)^2 = u_x^2 + u_r^2`` (JCGM 100 §5.1.2), where ``u_x`` is the certificate's U/k;
3. judges conformity of ``e`` against the tolerance under the configured decision rule
   (ILAC-G8:09/2019; :mod:`metrology.conformity`, :mod:`stream_processors.conformity`) and
   latches OUT_OF_TOLERANCE;
4. after a warm-up window that sets the in-control mean and sigma, updates the EWMA
   (Lucas & Saccucci 1990) and the tabular CUSUM (Montgomery, Introduction to SQC §9.1);
5. fits the error against time since calibration and predicts when the prediction band
   reaches a tolerance limit (Castrup; :mod:`metrology.drift`, :mod:`stream_processors.dates`);
6. derives the health conditions of DESIGN.md and the status (the most severe one).

:func:`assess_clock` re-evaluates the time-driven conditions (OFFLINE, due dates) without a
reading; :func:`~stream_processors.describe.describe` turns a state into a snapshot with its
reasons and numbers (and the reasons of every status change).
"""

from __future__ import annotations

import math

from metrology.assessment import Assessment, StatusChange
from metrology.calibration import CalibrationRecord, DueState, due_state
from metrology.chart_design import design_cusum, sigma_upper_bound_factor
from metrology.detectors import Baseline, CusumChart, PageHinkleyChart
from metrology.drift import DriftFit
from metrology.health import DRIFT_CONDITIONS, SEVERITY, Status
from metrology.instrument import InstrumentSpec
from metrology.reading import Reading
from metrology.timebase import SECONDS_PER_DAY, SECONDS_PER_YEAR
from metrology.usage import hours_in_use_after
from stream_processors.conformity import accepted
from stream_processors.context import InstrumentContext
from stream_processors.dates import (
    at_risk,
    best_estimate,
    drift_trend,
    estimate_limits,
    predicted_date,
    prediction_limits,
    trend_fit,
)
from stream_processors.describe import describe
from stream_processors.policy import ProcessingPolicy
from stream_processors.state import DriftTracking, InstrumentState, Judgement

__all__ = ["assess_clock", "is_offline", "step"]

AS_LEFT_ERROR = 0.0
"""The in-control error: the certificate's correction leaves none (ISO 10012 confirmation)."""


_NO_FIT = DriftFit()

# Records are built by field name, never by position: a field added or moved in a named tuple
# would otherwise shift every later value into the wrong field, silently. On the per-reading
# path ``Record.__new__(Record, name=...)`` builds the same tuple as ``Record(name=...)`` without
# the type call's dictionary of keywords (CPython builds one anyway beyond 15 keywords, as for
# the 25 fields of DriftTracking).


def step(
    state: InstrumentState, reading: Reading, context: InstrumentContext
) -> tuple[InstrumentState, Assessment, StatusChange | None]:
    """Process one reading (already in the instrument's registered unit)."""
    ts = reading.ts
    corrected, record = context.calibrations.correct(ts, reading.value)
    certificate = None if record is None else record.certificate_id
    if state.last_reading_at is not None and ts <= state.last_reading_at:
        # A late reading is corrected and stored, but detectors only move forward in time.
        assessment = Assessment.__new__(
            Assessment,
            instrument_id=reading.instrument_id,
            ts=ts,
            seq=reading.seq,
            corrected=corrected,
            certificate_id=certificate,
            reference=reading.reference,
            residual=None,
            u_residual=None,
            ewma=None,
            cusum_high=None,
            cusum_low=None,
            drift_rate=None,
            status=state.status or Status.OK,
        )
        return state._replace(readings=state.readings + 1), assessment, None

    tracking = state.tracking
    if certificate != tracking.certificate_id or tracking.origin is None:
        tracking = DriftTracking(
            certificate_id=certificate, origin=ts if record is None else record.calibrated_at
        )
    tolerance = context.spec.tolerance
    if tolerance.relative and not (reading.reference is not None and context.checked_by_standard):
        in_use = tracking.in_use.add(
            ts, *tolerance.limits_at(corrected), context.policy.in_use_window_s
        )
        if in_use is not tracking.in_use:  # most readings change nothing: keep the state
            tracking = tracking._replace(in_use=in_use)
    judgement = state.judgement
    residual = u_residual = None
    if reading.reference is not None:
        residual = corrected - reading.reference
        u_calibration = 0.0 if record is None else record.standard_uncertainty
        u_residual = math.hypot(u_calibration, reading.u_reference or 0.0)
        lower, upper = context.spec.tolerance.limits_at(reading.reference)
        judgement = Judgement.__new__(
            Judgement,
            residual=residual,
            u_residual=u_residual,
            reference=reading.reference,
            lower=lower,
            upper=upper,
        )
        if record is None:
            # Without a certificate in force the instrument's own uncertainty is unknown and
            # nothing says its error should be zero: only conformity is judged (it is
            # CAL_OVERDUE anyway); detectors and the drift fit start with a certificate.
            tracking = _judge_conformity(tracking, ts, judgement, context.policy)
        else:
            tracking = _track(
                tracking, ts, judgement, u_calibration, context.policy,
                context.spec.reporting_period_s,
            )  # fmt: skip

    conditions, status, drift_flagged = _health(tracking, context, record, ts, offline=False)
    first_drift_at = state.first_drift_at
    if first_drift_at is None and drift_flagged:
        first_drift_at = ts
    new_state = InstrumentState.__new__(
        InstrumentState,
        tracking=tracking,
        judgement=judgement,
        readings=state.readings + 1,
        last_reading_at=ts,
        status=status,
        conditions=conditions,
        status_since=ts if status != state.status else state.status_since,
        first_drift_at=first_drift_at,
        hours_in_use=hours_in_use_after(
            state.hours_in_use, state.last_reading_at, ts, context.spec.reporting_period_s
        ),
    )
    change = _change(state, new_state, context, ts) if status != state.status else None
    if residual is None or tracking.baseline is None:
        ewma = cusum_high = cusum_low = None
    else:
        ewma, cusum_high, cusum_low = (
            tracking.ewma.statistic,
            tracking.cusum.high,
            tracking.cusum.low,
        )
    assessment = Assessment.__new__(
        Assessment,
        instrument_id=reading.instrument_id,
        ts=ts,
        seq=reading.seq,
        corrected=corrected,
        certificate_id=certificate,
        reference=reading.reference,
        residual=residual,
        u_residual=u_residual,
        ewma=ewma,
        cusum_high=cusum_high,
        cusum_low=cusum_low,
        drift_rate=None
        if residual is None
        else trend_fit(tracking, context.policy.prediction_min_points).slope,
        status=status,
    )
    return new_state, assessment, change


def _judge_conformity(
    tracking: DriftTracking, ts: float, judgement: Judgement, policy: ProcessingPolicy
) -> DriftTracking:
    """Latch OUT_OF_TOLERANCE when a residual is not accepted under the decision rule."""
    if tracking.out_of_tolerance_since is None and not accepted(judgement, policy.decision_rule):
        return tracking._replace(out_of_tolerance_since=ts)
    return tracking


def _track(
    tracking: DriftTracking,
    ts: float,
    judgement: Judgement,
    u_calibration: float,
    policy: ProcessingPolicy,
    reporting_period_s: float,
) -> DriftTracking:
    """Advance warm-up, detectors, drift fit and prediction by one residual."""
    residual = judgement.residual
    assert residual is not None and judgement.u_residual is not None and tracking.origin is not None
    since_origin_days = (ts - tracking.origin) / SECONDS_PER_DAY
    fit = tracking.fit.add(since_origin_days, residual)
    record = tracking.record.add(since_origin_days, residual)
    warm_up, baseline = tracking.warm_up, tracking.baseline
    chart, shift = tracking.cusum_chart, tracking.shift_to_detect
    ewma, cusum = tracking.ewma, tracking.cusum
    drift_since, detector = tracking.drift_since, tracking.drift_detector
    rise_fit, fall_fit, side = tracking.rise_fit, tracking.fall_fit, tracking.drift_side
    hinkley_chart, hinkley = tracking.page_hinkley_chart, tracking.page_hinkley
    if baseline is None or chart is None or shift is None:
        warm_up = warm_up.add(residual)
        if warm_up.n >= policy.warm_up_residuals:
            sd = warm_up.standard_deviation or 0.0
            sigma = max(
                sd * sigma_upper_bound_factor(warm_up.n, policy.sigma_confidence),
                policy.sigma_floor_fraction * judgement.u_residual,
            )
            if sigma > 0.0:  # else identical residuals with no stated uncertainty: keep warming up
                baseline = Baseline(AS_LEFT_ERROR, sigma)
                shift, chart = _design(baseline, judgement, policy, reporting_period_s)
                if policy.page_hinkley:
                    # Page-Hinkley is a CUSUM against the running mean: the same reference
                    # value (half the shift) and decision interval.
                    hinkley_chart = PageHinkleyChart(
                        chart.reference_k, chart.decision_h, policy.warm_up_residuals
                    )
    else:
        ewma = ewma.update(residual, baseline, policy.ewma)
        cusum = cusum.update(residual, baseline, chart)
        # The last time a CUSUM side was zero estimates when a change began (Montgomery, SQC
        # §9.1.3): a fit restarted there follows the drift without the flat record before it.
        rise_fit = _NO_FIT if cusum.high == 0.0 else rise_fit.add(since_origin_days, residual)
        fall_fit = _NO_FIT if cusum.low == 0.0 else fall_fit.add(since_origin_days, residual)
        if drift_since is None:
            if cusum.signals(baseline, chart):
                drift_since, detector = ts, "CUSUM"
                side = 1 if cusum.high >= cusum.low else -1
            elif (
                ewma.signals(baseline, policy.ewma)
                and abs((ewma.statistic or 0.0) - baseline.mean) > shift / 2.0
            ):
                drift_since, detector = ts, "EWMA"
                side = 1 if (ewma.statistic or 0.0) > baseline.mean else -1
        if hinkley_chart is not None:
            hinkley = hinkley.update(residual, baseline, hinkley_chart)
            if drift_since is None and hinkley.signals(baseline, hinkley_chart):
                drift_since, detector = ts, "PAGE_HINKLEY"
                side = 1 if hinkley.high >= hinkley.low else -1
    out_of_tolerance_since = _judge_conformity(
        tracking, ts, judgement, policy
    ).out_of_tolerance_since
    predicted, note = tracking.predicted_oot_at, tracking.prediction_note
    estimated, estimate_u, onset_at = (
        tracking.estimated_oot_at,
        tracking.estimate_u_days,
        tracking.drift_onset_at,
    )
    estimate_note = tracking.estimate_note
    if (
        record.bins is not tracking.record.bins
        and fit.n >= policy.prediction_min_points
        and (drift_since is not None or predicted is not None)
    ):
        # A bin closed, with a drift in view (a detector signalled, or the band predicts a
        # date): refit the two-phase line, at most once a bin width.
        lower, upper = estimate_limits(tracking, judgement)
        estimated, estimate_u, onset_at, estimate_note = best_estimate(
            record, tracking.in_use, tracking.origin, since_origin_days, lower, upper, policy
        )
    if fit.n >= policy.prediction_min_points and fit.n % policy.prediction_every == 0:
        # Once a drift is signalled, extrapolate the drift since its change point.
        basis = drift_trend(fit, rise_fit, fall_fit, side, policy.prediction_min_points)
        lower, upper = prediction_limits(tracking, judgement)
        limits = judgement._replace(lower=lower, upper=upper)
        predicted, note = predicted_date(
            basis, tracking.origin, since_origin_days, limits, u_calibration, policy
        )
    return DriftTracking(
        certificate_id=tracking.certificate_id,
        origin=tracking.origin,
        warm_up=warm_up,
        baseline=baseline,
        cusum_chart=chart,
        shift_to_detect=shift,
        ewma=ewma,
        cusum=cusum,
        fit=fit,
        drift_since=drift_since,
        drift_detector=detector,
        out_of_tolerance_since=out_of_tolerance_since,
        predicted_oot_at=predicted,
        prediction_note=note,
        estimated_oot_at=estimated,
        rise_fit=rise_fit,
        fall_fit=fall_fit,
        drift_side=side,
        in_use=tracking.in_use,
        record=record,
        estimate_note=estimate_note,
        estimate_u_days=estimate_u,
        drift_onset_at=onset_at,
        page_hinkley_chart=hinkley_chart,
        page_hinkley=hinkley,
    )


def _design(
    baseline: Baseline, judgement: Judgement, policy: ProcessingPolicy, reporting_period_s: float
) -> tuple[float, CusumChart]:
    """The shift worth flagging for this instrument and the CUSUM designed to find it."""
    if judgement.lower is not None and judgement.upper is not None:
        half_tolerance = (judgement.upper - judgement.lower) / 2.0
    else:
        half_tolerance = abs(
            (judgement.upper if judgement.upper is not None else judgement.lower) or 0.0
        )
    assert judgement.u_residual is not None
    shift = max(
        policy.min_shift_uncertainties * judgement.u_residual,
        policy.drift_fraction * half_tolerance,
        baseline.sigma,
    )
    # False alarms are a rate in time: an instrument reporting every 5 minutes needs a twelve
    # times longer run between them (in readings) than one reporting hourly.
    readings_per_year = SECONDS_PER_YEAR / reporting_period_s
    in_control_arl = max(policy.years_between_false_alarms * readings_per_year, 1e3)
    return shift, design_cusum(shift / baseline.sigma, in_control_arl)


_HEALTH_CACHE: dict[tuple[bool, ...], tuple[tuple[Status, ...], Status, bool]] = {}


def _health(
    tracking: DriftTracking,
    context: InstrumentContext,
    record: CalibrationRecord | None,
    at: float,
    *,
    offline: bool,
) -> tuple[tuple[Status, ...], Status, bool]:
    """Conditions (most severe first), the status, and whether a drift condition holds."""
    if record is None:
        overdue, due_soon, risk = True, False, False
    else:
        due = due_state(record, at, context.policy.due_soon_days)
        overdue, due_soon = due is DueState.OVERDUE, due is DueState.DUE_SOON
        risk = at_risk(tracking, record.due_at)
    key = (
        tracking.out_of_tolerance_since is not None,
        offline,
        overdue,
        risk,
        tracking.drift_since is not None,
        due_soon,
        context.unverifiable,
    )
    health = _HEALTH_CACHE.get(key)
    if health is None:
        # The key's flags are in SEVERITY order, so the conditions come out most severe first.
        held = tuple(s for flag, s in zip(key, _FLAGGED_CONDITIONS, strict=True) if flag)
        health = _HEALTH_CACHE[key] = (
            held,
            held[0] if held else Status.OK,
            not DRIFT_CONDITIONS.isdisjoint(held),
        )
    return health


_FLAGGED_CONDITIONS = tuple(s for s in SEVERITY if s is not Status.OK)
"""The conditions in the order of ``_health``'s key: most severe first."""


def is_offline(
    state: InstrumentState, spec: InstrumentSpec, now: float, policy: ProcessingPolicy
) -> bool:
    """No reading for ``offline_after_periods`` reporting periods plus the delivery grace."""
    if state.last_reading_at is None:
        return False
    silence_allowed = (
        policy.offline_after_periods * spec.reporting_period_s + policy.offline_grace_s
    )
    return now - state.last_reading_at > silence_allowed


def assess_clock(
    state: InstrumentState, context: InstrumentContext, now: float
) -> tuple[InstrumentState, StatusChange | None]:
    """Re-evaluate the time-driven conditions (OFFLINE, due dates) at ``now`` without a reading."""
    if state.last_reading_at is None:
        return state, None
    record = context.calibrations.valid_at(now)
    offline = is_offline(state, context.spec, now, context.policy)
    conditions, status, _ = _health(state.tracking, context, record, now, offline=offline)
    if conditions == state.conditions:
        return state, None
    new_state = state._replace(
        status=status,
        conditions=conditions,
        status_since=now if status != state.status else state.status_since,
    )
    return new_state, _change(state, new_state, context, now)


def _change(
    old: InstrumentState, new: InstrumentState, context: InstrumentContext, at: float
) -> StatusChange | None:
    """A status change event, or None. The first status of an instrument is news only if not OK."""
    if new.status == old.status or (old.status is None and new.status is Status.OK):
        return None
    assert new.status is not None
    snapshot = describe(new, context, at)
    return StatusChange(
        instrument_id=context.spec.instrument_id,
        tenant=context.spec.tenant,
        site=context.spec.site,
        ts=at,
        previous=old.status,
        status=new.status,
        reasons=snapshot.reasons,
        numbers=snapshot.numbers,
    )
