"""Cross-checks against Sandia's suncal, an independent implementation (test-only extra).

suncal (https://sandiapsl.github.io/, ``pip install suncal``; 1.7 needs Python 3.12, so the test
extra pins 1.6) implements the ILAC-G8 / JCGM 106 risk figures (``suncal.risk``) and Castrup's
variables-data interval, reliability-target method (``suncal.intervals.variables``).

Known model difference, asserted rather than hidden: suncal's variables method fits the drift
through the as-left value at ``t = 0`` (one parameter, ``y = y0 + b t``, dof ``n - 1``), while
calstream fits the intercept as well (two parameters, dof ``n - 2``, METROLOGY.md): with exact
data both give the same date to within the dof difference; with scattered data the dates differ
by the scatter of the fitted intercept (a few percent with 60 points).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from suncal import risk
from suncal.intervals import variables

from metrology.conformity import DecisionRule, decide, probability_of_conformity
from metrology.drift import DriftFit, predicted_out_of_tolerance
from metrology.intervals import IntervalRecommendation, drift_based_interval


@settings(max_examples=300, deadline=None)
@given(
    value=st.floats(-3.0, 3.0),
    u=st.floats(0.01, 2.0),
    lower=st.floats(-2.0, -0.1),
    upper=st.floats(0.1, 2.0),
)
def test_probability_of_conformity_is_one_minus_suncals_specific_risk(
    value: float, u: float, lower: float, upper: float
) -> None:
    """ILAC-G8 §4.2 / JCGM 106 §7.4: p_c = 1 - specific risk of the measured value."""
    theirs = risk.specific_risk(stats.norm(value, u), lower, upper)
    assert probability_of_conformity(value, u, lower, upper) == pytest.approx(
        1.0 - float(theirs.total), abs=1e-9
    )


@pytest.mark.parametrize("target", [0.001, 0.01, 0.025, 0.05, 0.1])
def test_specific_risk_guard_band_meets_its_target_by_suncal(target: float) -> None:
    """A reading at the acceptance limit of a ``risk:p`` rule has specific risk p (suncal)."""
    u, lower, upper = 0.05, -0.5, 0.5
    decision = decide(0.0, 2.0 * u, lower, upper, DecisionRule.specific_risk(target))
    assert decision.acceptance_upper is not None and decision.acceptance_lower is not None
    at_upper = risk.specific_risk(stats.norm(decision.acceptance_upper, u), lower, upper)
    at_lower = risk.specific_risk(stats.norm(decision.acceptance_lower, u), lower, upper)
    assert float(at_upper.upper) == pytest.approx(target, rel=1e-6)
    assert float(at_lower.lower) == pytest.approx(target, rel=1e-6)


def test_guard_band_u_gives_suncals_2_3_percent_risk_at_the_limit() -> None:
    """ILAC-G8:09/2019 §4.2.2: w = U (k = 2) leaves about 2.3 % specific risk at the limit."""
    u = 0.1
    decision = decide(0.0, 2 * u, -1.0, 1.0, DecisionRule.guard_band_u())
    assert decision.acceptance_upper is not None
    at_limit = risk.specific_risk(stats.norm(decision.acceptance_upper, u), -1.0, 1.0)
    assert float(at_limit.upper) == pytest.approx(0.02275, abs=1e-5)


def _suncal_interval(t: np.ndarray, e: np.ndarray, u0: float) -> float:
    data = variables.VariablesData(t, e, u0=u0)
    return float(variables.variables_reliability_target(data, -1.0, 1.0, 0.95).interval)


def _fit(t: np.ndarray, e: np.ndarray) -> DriftFit:
    fit = DriftFit()
    for ti, ei in zip(t, e, strict=True):
        fit = fit.add(float(ti), float(ei))
    return fit


def test_exact_drift_gives_suncals_reliability_target_interval() -> None:
    """Noise-free drift through the as-left value: the models coincide (dof aside)."""
    t = np.linspace(1.0, 100.0, 60)
    e = 0.004 * t
    theirs = _suncal_interval(t, e, u0=0.05)
    ours = predicted_out_of_tolerance(_fit(t, e), -1.0, 1.0, 0.05, 0.95).time
    assert ours is not None
    # band = 0.004 t + k 0.05 reaches 1 at t = (1 - k 0.05) / 0.004 with k = t_(0.975, dof)
    assert ours == pytest.approx((1.0 - stats.t.ppf(0.975, 58) * 0.05) / 0.004, rel=1e-9)
    assert ours == pytest.approx(theirs, rel=2e-4)  # t_(0.975, 58) vs suncal's dof 59


@pytest.mark.parametrize("seed", range(6))
def test_scattered_drift_agrees_with_suncal_within_the_intercept_scatter(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.linspace(1.0, 100.0, 60)
    e = 0.004 * t + rng.normal(0.0, 0.03, t.size)
    theirs = _suncal_interval(t, e, u0=0.05)
    recommendation = drift_based_interval(_fit(t, e), -1.0, 1.0, 0.05, 0.95)
    assert isinstance(recommendation, IntervalRecommendation)
    assert recommendation.interval_days == pytest.approx(theirs, rel=0.05)
