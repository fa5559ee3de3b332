"""The per-instrument processing step: the one place where the metrology is applied to a reading.

``step(state, reading, context) -> (state, assessment, change)`` is pure: the embedded runner and
the Faust agents call exactly this function. For every reading it

1. applies the correction of the calibration valid at the reading's time (METROLOGY.md,
   "Calibration state is time-versioned"); a new calibration starts a new detection period;
2. forms the error of indication against the reference, ``e = x - r`` with
   ``u(e)^2 = u_x^2 + u_r^2`` (JCGM 100 §5.1.2), where ``u_x`` is the certificate's U/k;
3. judges conformity of ``e`` against the tolerance under the configured decision rule
   (ILAC-G8:09/2019; :mod:`metrology.conformity`);
4. after a warm-up window that sets the in-control mean and sigma, updates the EWMA
   (Lucas & Saccucci 1990) and the tabular CUSUM (Montgomery, Introduction to SQC §9.1);
5. fits the error against time since calibration and predicts when the prediction band
   reaches a tolerance limit (Castrup; :mod:`metrology.drift`);
6. derives the health conditions of DESIGN.md and the status (the most severe one).

:func:`assess_clock` re-evaluates the time-driven conditions (OFFLINE, due dates) without a
reading; :func:`describe` turns a state into a snapshot with its reasons and numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

from metrology.assessment import Assessment, HealthSnapshot, StatusChange
from metrology.calibration import CalibrationHistory, CalibrationRecord, DueState, due_state
from metrology.chart_design import design_cusum, sigma_upper_bound_factor
from metrology.conformity import DecisionRule, decide
from metrology.detectors import Baseline, CusumChart, PageHinkleyChart
from metrology.drift import DriftFit, predicted_out_of_tolerance
from metrology.health import DRIFT_CONDITIONS, SEVERITY, Status
from metrology.in_use import InUseLimits, tighter
from metrology.instrument import InstrumentSpec, ReferenceKind
from metrology.onset import DriftRecord, fit_onset
from metrology.reading import Reading
from metrology.timebase import SECONDS_PER_DAY, SECONDS_PER_HOUR, SECONDS_PER_YEAR, iso
from metrology.usage import hours_in_use_after
from stream_processors.policy import ProcessingPolicy
from stream_processors.recommend import interval_numbers
from stream_processors.state import DriftTracking, InstrumentState, Judgement

AS_LEFT_ERROR = 0.0
"""The in-control error: the certificate's correction leaves none (ISO 10012 confirmation)."""
COVERAGE_FACTOR = 2.0
"""k used to expand u(e) for the conformity decision (about 95 % for a normal distribution)."""


_NO_FIT = DriftFit()
_NO_DRIFT_NUMBERS = (None,) * 6
"""Residual, its uncertainty, EWMA, CUSUM high and low, drift rate: none for a late reading."""


@dataclass(frozen=True, slots=True)
class InstrumentContext:
    """What `step` needs to know about an instrument besides its state."""

    spec: InstrumentSpec
    calibrations: CalibrationHistory
    policy: ProcessingPolicy
    unverifiable: bool = field(init=False)
    """No reference relation: drift cannot be judged."""
    checked_by_standard: bool = field(init=False)
    """Readings that carry a reference measure a check standard (not a value in use)."""

    def __post_init__(self) -> None:
        kind = self.spec.reference.kind
        object.__setattr__(self, "unverifiable", kind is ReferenceKind.NONE)
        object.__setattr__(self, "checked_by_standard", kind is ReferenceKind.CHECK_STANDARD)


def step(
    state: InstrumentState, reading: Reading, context: InstrumentContext
) -> tuple[InstrumentState, Assessment, StatusChange | None]:
    """Process one reading (already in the instrument's registered unit)."""
    ts = reading.ts
    corrected, record = context.calibrations.correct(ts, reading.value)
    certificate = None if record is None else record.certificate_id
    if state.last_reading_at is not None and ts <= state.last_reading_at:
        # A late reading is corrected and stored, but detectors only move forward in time.
        assessment = Assessment(
            reading.instrument_id, ts, reading.seq, corrected, certificate, reading.reference,
            *_NO_DRIFT_NUMBERS, state.status or Status.OK,
        )  # fmt: skip
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
        judgement = Judgement(residual, u_residual, reading.reference, lower, upper)
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
    new_state = InstrumentState(
        tracking,
        judgement,
        state.readings + 1,
        ts,
        status,
        conditions,
        ts if status != state.status else state.status_since,
        first_drift_at,
        hours_in_use_after(
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
    assessment = Assessment(
        reading.instrument_id,
        ts,
        reading.seq,
        corrected,
        certificate,
        reading.reference,
        residual,
        u_residual,
        ewma,
        cusum_high,
        cusum_low,
        trend_fit(tracking, context.policy.prediction_min_points).slope
        if residual is not None
        else None,
        status,
    )
    return new_state, assessment, change


def accepted(judgement: Judgement, rule: DecisionRule) -> bool:
    """Whether the residual lies in the acceptance zone of ``rule`` (ILAC-G8:09/2019 §4.2).

    The acceptance limits are the tolerance limits moved inwards by the rule's guard band
    ``w`` (0 for simple acceptance, U for w = U, or from a target specific risk), with
    ``U = k u(e)``. This is the test behind :func:`metrology.conformity.decide`, inlined
    because it runs for every residual; :func:`describe` reports the full decision.
    """
    residual = judgement.residual
    assert residual is not None and judgement.u_residual is not None
    w = rule.guard_band(COVERAGE_FACTOR * judgement.u_residual)
    if judgement.lower is not None and residual < judgement.lower + w:
        return False
    return judgement.upper is None or residual <= judgement.upper - w


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
        estimated, estimate_u, onset_at, estimate_note = _estimate(
            record, tracking.in_use, tracking.origin, since_origin_days, lower, upper, policy
        )
    if fit.n >= policy.prediction_min_points and fit.n % policy.prediction_every == 0:
        # Once a drift is signalled, extrapolate the drift since its change point.
        basis = _trend(fit, rise_fit, fall_fit, side, policy.prediction_min_points)
        lower, upper = prediction_limits(tracking, judgement)
        limits = judgement._replace(lower=lower, upper=upper)
        predicted, note = _predict(
            basis, tracking.origin, since_origin_days, limits, u_calibration, policy
        )
    return DriftTracking(
        tracking.certificate_id,
        tracking.origin,
        warm_up,
        baseline,
        chart,
        shift,
        ewma,
        cusum,
        fit,
        drift_since,
        detector,
        out_of_tolerance_since,
        predicted,
        note,
        estimated,
        rise_fit,
        fall_fit,
        side,
        tracking.in_use,
        record,
        estimate_note,
        estimate_u,
        onset_at,
        hinkley_chart,
        hinkley,
    )


def prediction_limits(
    tracking: DriftTracking, judgement: Judgement
) -> tuple[float | None, float | None]:
    """The limits the dates are predicted against: the tightest of the judged reading's and
    those of the values measured in use this period (see ``DriftTracking.in_use``)."""
    return tighter((judgement.lower, judgement.upper), tracking.in_use.tightest)


def estimate_limits(
    tracking: DriftTracking, judgement: Judgement
) -> tuple[float | None, float | None]:
    """The limits the best estimate is judged against: those of the values measured in use
    recently when the tolerance is relative to the reading (see ``InUseLimits.recent``), else
    the judged reading's."""
    lower, upper = tracking.in_use.recent
    if lower is None and upper is None:
        return judgement.lower, judgement.upper
    return lower, upper


def trend_fit(tracking: DriftTracking, min_points: int) -> DriftFit:
    """The fit the drift rate and the dates come from (see :func:`_trend`)."""
    return _trend(
        tracking.fit, tracking.rise_fit, tracking.fall_fit, tracking.drift_side, min_points
    )


def _trend(
    fit: DriftFit, rise_fit: DriftFit, fall_fit: DriftFit, side: int, min_points: int
) -> DriftFit:
    """The fit since the change point once a drift is signalled on ``side`` (and it has
    ``min_points``), else the fit over the whole calibration period."""
    if side:
        trend = rise_fit if side > 0 else fall_fit
        if trend.n >= min_points:
            return trend
    return fit


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


class Estimate(NamedTuple):
    """The best estimate of the out-of-tolerance time and the numbers behind it."""

    at: float | None
    """Epoch seconds; ``None`` when the data do not support one yet (``note`` says why)."""
    u_days: float | None
    onset_at: float | None
    """When the drift began, by the two-phase fit (epoch seconds)."""
    note: str | None


def _estimate(
    record: DriftRecord,
    in_use: InUseLimits,
    origin: float,
    now_days: float,
    lower: float | None,
    upper: float | None,
    policy: ProcessingPolicy,
) -> Estimate:
    """Best estimate of the out-of-tolerance time: where the two-phase fit's predicted error
    reaches a limit (:mod:`metrology.onset`).

    Given only when the crossing is ahead, its standard uncertainty is at most
    ``estimate_precision`` of the time left until it, and the time left is at most
    ``estimate_max_extrapolation`` times the drift's record since its onset (a line is not
    trusted far beyond its data).
    """
    onset_fit = fit_onset(record)
    if onset_fit is None:
        return Estimate(None, None, None, "too few residuals for the two-phase fit")
    onset_at = origin + onset_fit.onset * SECONDS_PER_DAY

    def none(why: str, u: float | None = None) -> Estimate:
        return Estimate(None, u, onset_at, why)

    crossing = onset_fit.crossing(lower, upper)
    if crossing is None:
        return none("the fitted error moves towards no limit")
    left = crossing - now_days
    u = onset_fit.crossing_standard_uncertainty(
        crossing, in_use.limit_uncertainty(upper=onset_fit.rate > 0.0)
    )
    drifting = now_days - onset_fit.onset
    if left <= 0.0:
        return none(f"the fitted error is at or beyond the limit now (+/- {u:.0f} d)", u)
    if u > policy.estimate_precision * left:
        return none(
            f"the error reaches the limit in {left:.0f} d +/- {u:.0f} d: too uncertain for a "
            f"best estimate yet (needs +/- {policy.estimate_precision * left:.0f} d)",
            u,
        )
    if left > policy.estimate_max_extrapolation * drifting:
        return none(
            f"the error reaches the limit in {left:.0f} d, beyond "
            f"{policy.estimate_max_extrapolation:g} x the {drifting:.0f} d of drift behind it",
            u,
        )
    return Estimate(
        origin + crossing * SECONDS_PER_DAY,
        u,
        onset_at,
        f"{left:.0f} d +/- {u:.0f} d ahead at {onset_fit.rate:+.3g}/d since the onset",
    )


def _predict(
    fit: DriftFit,
    origin: float,
    now_days: float,
    judgement: Judgement,
    u_calibration: float,
    policy: ProcessingPolicy,
) -> tuple[float | None, str]:
    """Predicted out-of-tolerance time (epoch seconds) from the drift fit, or why there is none."""
    spread = math.sqrt(fit.m2_t / fit.n) if fit.n else 0.0
    if spread < policy.prediction_min_spread_days:
        return None, (
            f"times spread {spread:.1f} d < {policy.prediction_min_spread_days:g} d: "
            "too short a record to extrapolate"
        )
    # A regression line is not trusted far beyond the data it was fitted to: look ahead at
    # most ``prediction_max_extrapolation`` times the span of the record (uniform sampling:
    # span = sqrt(12) x standard deviation of the times).
    span = math.sqrt(12.0) * spread
    prediction = predicted_out_of_tolerance(
        fit,
        judgement.lower,
        judgement.upper,
        u_calibration,
        policy.prediction_confidence,
        after=now_days,
        horizon=now_days + policy.prediction_max_extrapolation * span,
        min_points=policy.prediction_min_points,
        significance=policy.prediction_significance,
    )
    if prediction.time is None:
        return None, prediction.reason
    return origin + prediction.time * SECONDS_PER_DAY, prediction.reason


def _at_risk(tracking: DriftTracking, due_at: float) -> bool:
    """Predicted out of tolerance before the due date: by the prediction band (the early,
    conservative date) or by the best estimate."""
    predicted, estimated = tracking.predicted_oot_at, tracking.estimated_oot_at
    return (predicted is not None and predicted < due_at) or (
        estimated is not None and estimated < due_at
    )


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
        overdue, due_soon, at_risk = True, False, False
    else:
        due = due_state(record, at, context.policy.due_soon_days)
        overdue, due_soon = due is DueState.OVERDUE, due is DueState.DUE_SOON
        at_risk = _at_risk(tracking, record.due_at)
    key = (
        tracking.out_of_tolerance_since is not None,
        offline,
        overdue,
        at_risk,
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


def describe(state: InstrumentState, context: InstrumentContext, at: float) -> HealthSnapshot:
    """The instrument's health with a reason for each condition and the numbers behind them."""
    spec, policy = context.spec, context.policy
    tracking, judgement = state.tracking, state.judgement
    record = context.calibrations.valid_at(state.last_reading_at if state.last_reading_at else at)
    baseline, chart = tracking.baseline, tracking.cusum_chart
    unit = spec.unit
    decision = None
    if judgement.residual is not None and judgement.u_residual is not None:
        decision = decide(
            judgement.residual,
            COVERAGE_FACTOR * judgement.u_residual,
            judgement.lower,
            judgement.upper,
            policy.decision_rule,
        )
    reasons: list[str] = []
    for condition in state.conditions:
        if condition is Status.OUT_OF_TOLERANCE:
            reasons.append(
                f"error of indication {judgement.residual:+.4g} {unit} "
                f"(u {judgement.u_residual:.2g}) judged {decision.outcome if decision else '-'} "
                f"against [{_fmt(judgement.lower)}, {_fmt(judgement.upper)}]"
                f" under {policy.decision_rule.name}; out of tolerance since "
                f"{iso(tracking.out_of_tolerance_since or at)}"
            )
        elif condition is Status.OFFLINE:
            silent = (at - (state.last_reading_at or at)) / SECONDS_PER_HOUR
            reasons.append(
                f"no reading for {silent:.1f} h (expected every "
                f"{spec.reporting_period_s / SECONDS_PER_HOUR:.2g} h)"
            )
        elif condition is Status.CAL_OVERDUE:
            if record is None:
                reasons.append("no calibration record in force")
            else:
                late = (at - record.due_at) / SECONDS_PER_DAY
                reasons.append(
                    f"calibration {record.certificate_id} was due {iso(record.due_at)[:10]} "
                    f"({late:.0f} d overdue)"
                )
        elif condition is Status.AT_RISK and record is not None:
            dates = []
            if tracking.predicted_oot_at is not None:
                dates.append(f"predicted out of tolerance {iso(tracking.predicted_oot_at)[:10]}")
            if tracking.estimated_oot_at is not None:
                dates.append(
                    f"best estimate {iso(tracking.estimated_oot_at)[:10]} "
                    f"+/- {tracking.estimate_u_days or 0.0:.0f} d"
                )
            reasons.append(
                f"{', '.join(dates)}: before the calibration due date {iso(record.due_at)[:10]}"
            )
        elif condition is Status.DRIFTING and baseline is not None and chart is not None:
            hinkley = ""
            if tracking.page_hinkley_chart is not None:
                ph = tracking.page_hinkley
                hinkley = (
                    f"; Page-Hinkley +{ph.high:.3g}/-{ph.low:.3g} vs "
                    f"{tracking.page_hinkley_chart.threshold * baseline.sigma:.3g}"
                )
            reasons.append(
                f"{tracking.drift_detector} signalled at {iso(tracking.drift_since or at)} "
                f"(EWMA {_fmt(tracking.ewma.statistic)} vs limit ±"
                f"{tracking.ewma.limit(baseline, policy.ewma):.3g} around {baseline.mean:+.3g}; "
                f"CUSUM +{tracking.cusum.high:.3g}/-{tracking.cusum.low:.3g} vs h "
                f"{tracking.cusum.threshold(baseline, chart):.3g}{hinkley} {unit})"
            )
        elif condition is Status.CAL_DUE_SOON and record is not None:
            reasons.append(f"calibration {record.certificate_id} due {iso(record.due_at)[:10]}")
        elif condition is Status.UNVERIFIED:
            reasons.append(
                "no reference (check standard, reference instrument or peers): "
                "drift cannot be judged"
            )
    if not reasons:
        if judgement.residual is None:
            reasons.append("in date; no reference value received yet")
        elif baseline is None:
            reasons.append(
                f"in tolerance; detectors warming up ({tracking.warm_up.n}/"
                f"{policy.warm_up_residuals} residuals)"
            )
        else:
            reasons.append("in tolerance, no drift signal")
    fit = trend_fit(tracking, policy.prediction_min_points)
    numbers: dict[str, float | str | None] = {
        "residual": judgement.residual,
        "u_residual": judgement.u_residual,
        "reference": judgement.reference,
        "lower_limit": judgement.lower,
        "upper_limit": judgement.upper,
        "probability_of_conformity": None
        if decision is None
        else decision.probability_of_conformity,
        "decision": None if decision is None else str(decision.outcome),
        "guard_band": None if decision is None else decision.guard_band,
        "decision_rule": policy.decision_rule.name,
        "baseline_mean": None if baseline is None else baseline.mean,
        "sigma": None if baseline is None else baseline.sigma,
        "ewma": tracking.ewma.statistic if baseline is not None else None,
        "ewma_limit": None if baseline is None else tracking.ewma.limit(baseline, policy.ewma),
        "cusum_high": tracking.cusum.high if baseline is not None else None,
        "cusum_low": tracking.cusum.low if baseline is not None else None,
        "cusum_threshold": (
            None if baseline is None or chart is None else tracking.cusum.threshold(baseline, chart)
        ),
        "shift_to_detect": tracking.shift_to_detect,
        "drift_rate": fit.slope,
        "drift_rate_u": fit.slope_standard_error,
        "fit_points": float(fit.n),
        "fit_basis": "since the change point" if fit is not tracking.fit else "since calibration",
        "drift_rate_since_calibration": tracking.fit.slope,
        "in_use_lower_limit": tracking.in_use.lower,
        "in_use_upper_limit": tracking.in_use.upper,
        "predicted_oot_at": tracking.predicted_oot_at,
        "estimated_oot_at": tracking.estimated_oot_at,
        "estimated_oot_u_days": tracking.estimate_u_days,
        "drift_onset_at": tracking.drift_onset_at,
        "prediction_note": tracking.prediction_note,
        "estimate_note": tracking.estimate_note,
        "drift_since": tracking.drift_since,
        "drift_detector": tracking.drift_detector,
        "out_of_tolerance_since": tracking.out_of_tolerance_since,
        "first_drift_at": state.first_drift_at,
        "certificate_id": None if record is None else record.certificate_id,
        "due_at": None if record is None else record.due_at,
        **interval_numbers(state, spec, record, policy),
    }
    return HealthSnapshot(
        instrument_id=spec.instrument_id,
        tenant=spec.tenant,
        site=spec.site,
        status=state.status or Status.OK,
        conditions=state.conditions,
        reasons=tuple(reasons),
        evaluated_at=at,
        last_reading_at=state.last_reading_at,
        numbers=numbers,
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:+.4g}"
