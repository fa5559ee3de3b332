"""A scenario: every instrument's parameters for one simulated window, drawn from one seed.

:func:`build_scenario` turns a fleet, a seed and a window into one :class:`InstrumentPlan` per
instrument (everything the simulator needs to compute readings with numpy, precomputed) and the
:class:`~edge_sim.truth.GroundTruth` those plans imply. The physics, per reading at time t:

- true value ``x(t)``: the process at the instrument's measuring point (peers share one point);
- error ``e(t) = d(t) + n(t)``: the behaviour's injected error plus noise with sigma 0.5-0.8 x
  the standard uncertainty ``u = U/k`` of the calibration (so the declared uncertainty is honest);
- indication ``i(t) = (x(t) + e(t) - offset) / gain``, the inverse of the correction valid at t
  (``corrected = gain * indication + offset``, :class:`metrology.calibration.Correction`), so
  that the corrected value is ``x + e``; with no calibration valid, ``i = x + e``;
- reference: a co-located reference instrument reports ``x + n_r`` with every reading; a check
  standard of nominal value ``c`` is measured once in ``N`` readings (about once a day, never
  more often than one reading in 24): the indication is then of ``c + n_r`` and the reference
  reported is ``c``. In both cases ``u_r = 0.25 u`` and ``n_r`` is drawn with that sigma.

A behaviour that does not fit a short window (no room for the warm-up before a drift, or for a
silent stretch) falls back to ``stable``, and the truth says so.

A few instruments report in a convertible alternative unit (kPa <-> bar, L/min <-> m**3/h,
N -> kN, V -> mV), as a real gateway configured by hand would; ingest converts them back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_sim.behaviour import (
    BEHAVIOUR_SHARES,
    CROSSING_SHARE,
    NO_ERROR,
    Behaviour,
    FloatArray,
    InjectedError,
    Window,
    allocate,
    design_error,
    draw_dropouts,
    draw_stuck_at,
    first_out_of_tolerance,
    tolerance_limits,
)
from edge_sim.process import ProcessModel
from edge_sim.truth import GroundTruth, InstrumentTruth
from metrology.fleet import Fleet
from metrology.instrument import InstrumentSpec, ReferenceKind
from metrology.timebase import SECONDS_PER_DAY
from metrology.units import linear_conversion

REFERENCE_U_RATIO = 0.25
"""u of a reference (check standard, reference instrument) as a fraction of the instrument's u."""
CHECK_EVERY_MIN = 24
ALTERNATIVE_UNITS: dict[str, str] = {
    "kPa": "bar",
    "bar": "kPa",
    "L/min": "m**3/h",
    "m**3/h": "L/min",
    "N": "kN",
    "V": "mV",
}
ALTERNATIVE_UNIT_SHARE = 0.12
"""Share of the instruments with an alternative unit that report in it."""


@dataclass(frozen=True, slots=True)
class InstrumentPlan:
    """Everything needed to compute one instrument's readings at any times, precomputed."""

    index: int
    spec: InstrumentSpec
    reported_unit: str
    period_s: float
    process: ProcessModel
    error: InjectedError
    noise_sigma: float
    u_reference: float
    """Standard uncertainty of the reference, registered unit (0 without a reference)."""
    calibration_times: FloatArray
    offsets: FloatArray
    """Correction offsets; index 0 is "no calibration valid" (offset 0), i + 1 the i-th record."""
    gains: FloatArray
    check_every: int
    check_phase: int
    check_nominal: float
    stuck_at: float
    """``inf`` unless the instrument gets stuck."""
    stuck_indication: float
    """The frozen indication, reported unit."""
    dropout_starts: FloatArray
    dropout_ends: FloatArray
    unit_scale: float
    unit_offset: float
    decimals: int
    """Indications are rounded to this many decimals in the reported unit (the resolution)."""

    @property
    def reference_kind(self) -> ReferenceKind:
        return self.spec.reference.kind

    def correction_index(self, ts: FloatArray) -> npt.NDArray[np.intp]:
        """Index into ``offsets``/``gains`` of the calibration valid at each time."""
        return np.searchsorted(self.calibration_times, ts, side="right")

    def indication_of(self, measured: FloatArray, ts: FloatArray) -> FloatArray:
        """The indication (registered unit) whose corrected value is ``measured``."""
        j = self.correction_index(ts)
        return (measured - self.offsets[j]) / self.gains[j]

    def to_reported(self, value: FloatArray) -> FloatArray:
        """A value in the registered unit, in the reported unit, at the instrument's resolution."""
        return np.round(value * self.unit_scale + self.unit_offset, self.decimals)


@dataclass(frozen=True)
class Scenario:
    """The plans of all instruments (registry order) and the truth they imply."""

    plans: list[InstrumentPlan]
    truth: GroundTruth

    def plan(self, instrument_id: str) -> InstrumentPlan:
        for plan in self.plans:
            if plan.spec.instrument_id == instrument_id:
                return plan
        raise KeyError(instrument_id)


def _standard_uncertainty(fleet: Fleet, spec: InstrumentSpec, end: float) -> float:
    history = fleet.calibrations[spec.instrument_id]
    record = history.valid_at(end) or (history.records[0] if len(history) else None)
    if record is not None and record.standard_uncertainty > 0:
        return record.standard_uncertainty
    return spec.tolerance.half_width / 7.0


def _nice(value: float, span: float) -> float:
    step = 10.0 ** math.floor(math.log10(span)) / 10.0
    return round(round(value / step) * step, 10)


def _decimals(u_reported: float) -> int:
    return max(0, 1 - math.floor(math.log10(u_reported)))


def _peer_assignments(
    fleet: Fleet, behaviours: list[Behaviour], rng: np.random.Generator
) -> list[Behaviour]:
    """At most one drifting member per peer group (so the consensus can single it out)."""
    specs = list(fleet.instruments.values())
    result = list(behaviours)
    spare = [
        i
        for i, s in enumerate(specs)
        if s.reference.kind is not ReferenceKind.PEER_GROUP and result[i] is Behaviour.STABLE
    ]
    groups: dict[str, list[int]] = {}
    for i, spec in enumerate(specs):
        if spec.reference.kind is ReferenceKind.PEER_GROUP and spec.reference.peer_group:
            groups.setdefault(spec.reference.peer_group, []).append(i)
    for members in groups.values():
        drifting = [i for i in members if result[i].drifts]
        for i in drifting[1:]:
            if not spare:
                result[i] = Behaviour.STABLE
                continue
            j = spare.pop(int(rng.integers(len(spare))))
            result[i], result[j] = result[j], result[i]
    return result


def build_scenario(fleet: Fleet, seed: int, start: float, end: float) -> Scenario:
    """Draw every instrument's behaviour and parameters for ``[start, end)`` from ``seed``."""
    if not end > start:
        raise ValueError(f"the window end {end} must be after its start {start}")
    rng = np.random.default_rng([seed, 0])
    specs = list(fleet.instruments.values())
    behaviours = _peer_assignments(fleet, allocate(rng, len(specs), BEHAVIOUR_SHARES), rng)
    drifting = [i for i, b in enumerate(behaviours) if b.drifts]
    n_crossing = round(CROSSING_SHARE * len(drifting))
    crossing = {drifting[i] for i in rng.permutation(len(drifting))[:n_crossing]}
    eligible = [i for i, s in enumerate(specs) if s.unit in ALTERNATIVE_UNITS]
    n_alternative = max(1, round(ALTERNATIVE_UNIT_SHARE * len(eligible))) if eligible else 0
    alternative = {eligible[i] for i in rng.permutation(len(eligible))[:n_alternative]}

    points: dict[str, ProcessModel] = {}
    plans: list[InstrumentPlan] = []
    truths: dict[str, InstrumentTruth] = {}
    for index, spec in enumerate(specs):
        instrument_id = spec.instrument_id
        measuring_range = fleet.ranges[instrument_id]
        point = spec.reference.peer_group if spec.reference.peer_group else instrument_id
        if point not in points:
            points[point] = ProcessModel.draw(
                rng, measuring_range.low, measuring_range.high, start, end
            )
        process = points[point]
        behaviour = behaviours[index]
        period = spec.reporting_period_s
        window = Window(start, end, period)
        records = fleet.calibrations[instrument_id].records
        u = _standard_uncertainty(fleet, spec, end)
        noise_sigma = u * float(rng.uniform(0.5, 0.8))
        u_reference = REFERENCE_U_RATIO * u

        def limit(
            ts: FloatArray, sign: int, spec: InstrumentSpec = spec, process: ProcessModel = process
        ) -> FloatArray:
            lower, upper = tolerance_limits(spec.tolerance, process.value_at(ts))
            return np.asarray(upper if sign > 0 else -lower, dtype=np.float64)

        tolerance = spec.tolerance
        sides = [s for s, lim in ((1, tolerance.upper), (-1, tolerance.lower)) if lim is not None]
        error = NO_ERROR
        if behaviour.drifts:
            error = design_error(
                rng,
                behaviour,
                index in crossing,
                window,
                [r.calibrated_at for r in records],
                limit,
                sides,
            )
            if error.onset is None:
                behaviour = Behaviour.STABLE  # the window is too short for a warm-up and a drift

        reported_unit = ALTERNATIVE_UNITS[spec.unit] if index in alternative else spec.unit
        conversion = linear_conversion(spec.unit, reported_unit)
        decimals = _decimals(u * abs(conversion.scale))

        check_every = max(CHECK_EVERY_MIN, round(SECONDS_PER_DAY / period))
        check_phase = int(rng.integers(check_every))
        nominal = _nice(
            measuring_range.low + measuring_range.span * float(rng.uniform(0.2, 0.8)),
            measuring_range.span,
        )

        calibration_times = np.array([r.calibrated_at for r in records], dtype=np.float64)
        offsets = np.array([0.0, *(r.correction.offset for r in records)])
        gains = np.array([1.0, *(r.correction.gain for r in records)])

        stuck_at = math.inf
        stuck_indication = math.nan
        if behaviour is Behaviour.STUCK:
            stuck_at = draw_stuck_at(rng, window)
            at = np.array([stuck_at])
            measured = process.value_at(at) + rng.normal(0.0, noise_sigma, 1)
            j = int(np.searchsorted(calibration_times, stuck_at, side="right"))
            indication = (measured - offsets[j]) / gains[j]
            stuck_indication = float(
                np.round(indication * conversion.scale + conversion.offset, decimals)[0]
            )
        dropouts = draw_dropouts(rng, window) if behaviour is Behaviour.DROPOUT else ()
        if behaviour is Behaviour.DROPOUT and not dropouts:
            behaviour = Behaviour.STABLE  # the window is too short for a silent stretch

        plan = InstrumentPlan(
            index=index,
            spec=spec,
            reported_unit=reported_unit,
            period_s=period,
            process=process,
            error=error,
            noise_sigma=noise_sigma,
            u_reference=u_reference if spec.reference.kind in _WITH_REFERENCE else 0.0,
            calibration_times=calibration_times,
            offsets=offsets,
            gains=gains,
            check_every=check_every,
            check_phase=check_phase,
            check_nominal=nominal,
            stuck_at=stuck_at,
            stuck_indication=stuck_indication,
            dropout_starts=np.array([w[0] for w in dropouts], dtype=np.float64),
            dropout_ends=np.array([w[1] for w in dropouts], dtype=np.float64),
            unit_scale=conversion.scale,
            unit_offset=conversion.offset,
            decimals=decimals,
        )
        plans.append(plan)
        truths[instrument_id] = _truth_of(plan, behaviour, window)
    return Scenario(plans, GroundTruth(seed=seed, start=start, end=end, instruments=truths))


_WITH_REFERENCE = (ReferenceKind.CHECK_STANDARD, ReferenceKind.REFERENCE_INSTRUMENT)


def _truth_of(plan: InstrumentPlan, behaviour: Behaviour, window: Window) -> InstrumentTruth:
    spec = plan.spec
    error = plan.error
    true_oot_at = None
    drifts = error.onset is not None
    if drifts:
        ts = window.reading_times()
        true_oot_at = first_out_of_tolerance(
            ts, error.at(ts), plan.process.value_at(ts), spec.tolerance
        )
    is_check = spec.reference.kind is ReferenceKind.CHECK_STANDARD
    return InstrumentTruth(
        instrument_id=spec.instrument_id,
        tenant=spec.tenant,
        site=spec.site,
        gateway=spec.gateway,
        behaviour=behaviour,
        reference_kind=spec.reference.kind.value,
        unit=spec.unit,
        reported_unit=plan.reported_unit,
        noise_sigma=plan.noise_sigma,
        drift_rate_per_day=error.rate_per_s * SECONDS_PER_DAY,
        onset_at=error.onset,
        step_size=error.step if behaviour is Behaviour.STEP_SHIFT and drifts else None,
        restarts_at=tuple(error.restarts.tolist()) if drifts else (),
        true_oot_at=true_oot_at,
        stuck_at=plan.stuck_at if math.isfinite(plan.stuck_at) else None,
        stuck_value=plan.stuck_indication if math.isfinite(plan.stuck_at) else None,
        dropout_windows=tuple(
            zip(plan.dropout_starts.tolist(), plan.dropout_ends.tolist(), strict=True)
        ),
        check_nominal=plan.check_nominal if is_check else None,
        check_every=plan.check_every if is_check else None,
    )
