"""An instrument's health as a snapshot: a reason for each condition and the numbers behind it.

Every status comes with the numbers behind it (DESIGN.md, "Instrument health"): the residual and
its uncertainty, the conformity decision under the configured rule with its probability of
conformity (ILAC-G8:09/2019), the detector statistics and limits (EWMA: Lucas & Saccucci 1990;
CUSUM: Montgomery, Introduction to SQC §9.1), the drift rate, the predicted date and the best
estimate (:mod:`stream_processors.dates`), and the interval recommendations
(:mod:`stream_processors.recommend`).
"""

from __future__ import annotations

from metrology.assessment import HealthSnapshot
from metrology.health import Status
from metrology.timebase import SECONDS_PER_DAY, SECONDS_PER_HOUR, iso
from stream_processors.conformity import conformity_decision
from stream_processors.context import InstrumentContext
from stream_processors.dates import trend_fit
from stream_processors.recommend import interval_numbers
from stream_processors.state import InstrumentState

__all__ = ["describe"]


def describe(state: InstrumentState, context: InstrumentContext, at: float) -> HealthSnapshot:
    """The instrument's health with a reason for each condition and the numbers behind them."""
    spec, policy = context.spec, context.policy
    tracking, judgement = state.tracking, state.judgement
    record = context.calibrations.valid_at(state.last_reading_at if state.last_reading_at else at)
    baseline, chart = tracking.baseline, tracking.cusum_chart
    unit = spec.unit
    decision = conformity_decision(judgement, policy.decision_rule)
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
