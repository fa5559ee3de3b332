"""Conformity decisions with measurement uncertainty (JCGM 106:2012, ILAC-G8:09/2019)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from metrology.conformity import (
    Decision,
    DecisionRule,
    DecisionRuleError,
    Outcome,
    RuleKind,
    decide,
    false_accept_risk_at_limit,
    probability_of_conformity,
)

finite = st.floats(-1e3, 1e3)
uncertainty = st.floats(1e-3, 1e2)
rules = st.sampled_from(
    [
        DecisionRule.simple(),
        DecisionRule.guard_band_u(),
        DecisionRule.specific_risk(0.025),
        DecisionRule.specific_risk(0.1, coverage_factor=1.96),
        DecisionRule.guard_band_u(coverage_factor=3.0),
    ]
)


def test_outcome_values_are_the_agreed_strings() -> None:
    assert [o.value for o in Outcome] == ["PASS", "CONDITIONAL_PASS", "CONDITIONAL_FAIL", "FAIL"]
    assert Outcome.PASS == "PASS"


def test_ilac_g8_guard_band_u_gives_2_3_percent_specific_risk() -> None:
    """ILAC-G8:09/2019 §4.2.2 / METROLOGY.md: with w = U and k = 2 the specific risk of false
    acceptance at the acceptance limit is 1 - Phi(2) = 2.28 % (about 2.3 %)."""
    u = 0.05
    decision = decide(0.9, 2 * u, None, 1.0, DecisionRule.guard_band_u())
    assert decision.guard_band == pytest.approx(0.1)
    assert decision.acceptance_upper == pytest.approx(0.9)
    assert decision.outcome is Outcome.PASS
    assert 1.0 - decision.probability_of_conformity == pytest.approx(0.02275, abs=5e-5)
    assert false_accept_risk_at_limit(decision.guard_band, u) == pytest.approx(0.02275, abs=5e-5)


def test_ilac_g8_simple_acceptance_has_50_percent_risk_at_the_limit() -> None:
    """ILAC-G8:09/2019 §4.2.1: simple acceptance (w = 0) accepts up to the limit, where the
    specific risk of false acceptance is 50 %."""
    decision = decide(1.0, 0.1, None, 1.0, DecisionRule.simple())
    assert decision.outcome is Outcome.PASS
    assert decision.probability_of_conformity == pytest.approx(0.5)
    assert false_accept_risk_at_limit(0.0, 0.05) == 0.5
    assert decide(1.0 + 1e-9, 0.1, None, 1.0, DecisionRule.simple()).outcome is Outcome.FAIL


def test_specific_risk_rule_sets_the_guard_band_from_the_target() -> None:
    """JCGM 106:2012 §8.3.3: w = z_(1-risk) u gives exactly the target specific risk at A_U.
    z_0.975 = 1.95996 (scipy.stats.norm.ppf); with U = 0.2 and k = 2, w = 0.195996."""
    rule = DecisionRule.specific_risk(0.025)
    decision = decide(0.0, 0.2, -1.0, 1.0, rule)
    assert decision.guard_band == pytest.approx(stats.norm.ppf(0.975) * 0.1)
    at_limit = decide(decision.acceptance_upper or 0.0, 0.2, None, 1.0, rule)
    assert 1.0 - at_limit.probability_of_conformity == pytest.approx(0.025, rel=1e-9)
    # The certificate's k overrides the rule's: U = 0.2 at k = 1 means u = 0.2.
    overridden = decide(0.0, 0.2, -1.0, 1.0, rule, coverage_factor=1.0)
    assert overridden.guard_band == pytest.approx(stats.norm.ppf(0.975) * 0.2)
    assert overridden.coverage_factor == 1.0


@pytest.mark.parametrize("p_c", [0.80, 0.90, 0.95, 0.99, 0.999])
def test_one_sided_conformance_probability_follows_z(p_c: float) -> None:
    """JCGM 106:2012 §7.3 relates p_c for a single upper limit to z = (T_U - y)/u through the
    normal CDF, p_c = Phi(z) (tabulated there for chosen p_c). Values recomputed with
    scipy.stats.norm.ppf rather than copied from the table."""
    z = stats.norm.ppf(p_c)
    assert probability_of_conformity(10.0 - z * 0.2, 0.2, None, 10.0) == pytest.approx(p_c)
    assert probability_of_conformity(10.0 + z * 0.2, 0.2, 10.0, None) == pytest.approx(p_c)


def test_non_binary_statement_zones() -> None:
    """ILAC-G8:09/2019 §4.2.3: PASS / CONDITIONAL PASS / CONDITIONAL FAIL / FAIL, tolerance
    [-1, 1], U = 0.2 (w = U)."""
    rule = DecisionRule.guard_band_u()
    outcomes = {
        y: decide(y, 0.2, -1.0, 1.0, rule).outcome for y in (0.0, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3)
    }
    assert outcomes == {
        0.0: Outcome.PASS,
        0.8: Outcome.PASS,
        0.9: Outcome.CONDITIONAL_PASS,
        1.0: Outcome.CONDITIONAL_PASS,
        1.1: Outcome.CONDITIONAL_FAIL,
        1.2: Outcome.CONDITIONAL_FAIL,
        1.3: Outcome.FAIL,
    }
    assert decide(-1.1, 0.2, -1.0, 1.0, rule).outcome is Outcome.CONDITIONAL_FAIL
    assert decide(-0.85, 0.2, -1.0, 1.0, rule).outcome is Outcome.CONDITIONAL_PASS
    # Guard bands wider than half the tolerance leave no acceptance zone.
    assert decide(0.0, 1.5, -1.0, 1.0, rule).outcome is Outcome.CONDITIONAL_PASS


def test_decision_records_the_numbers_and_the_rule() -> None:
    decision = decide(0.3, 0.2, -1.0, 1.0, DecisionRule.parse("risk:0.025"))
    assert decision.rule == "risk:0.025"
    assert decision.value == 0.3 and decision.expanded_uncertainty == 0.2
    assert decision.lower == -1.0 and decision.upper == 1.0
    assert decision.acceptance_lower == pytest.approx(-1.0 + decision.guard_band)
    assert decision.standard_uncertainty == pytest.approx(0.1)
    assert decision.accepted and decision.within_tolerance
    assert Decision(**dataclasses.asdict(decision)) == decision


@given(value=finite, u=uncertainty, a=finite, width=st.floats(0.0, 1e3))
def test_probability_agrees_with_scipy_norm(value: float, u: float, a: float, width: float) -> None:
    lower, upper = a, a + width
    expected = stats.norm.cdf(upper, value, u) - stats.norm.cdf(lower, value, u)
    assert probability_of_conformity(value, u, lower, upper) == pytest.approx(expected, abs=1e-12)
    assert probability_of_conformity(value, u, None, upper) == pytest.approx(
        stats.norm.cdf(upper, value, u), abs=1e-12
    )
    assert probability_of_conformity(value, u, lower, None) == pytest.approx(
        stats.norm.sf(lower, value, u), abs=1e-12
    )


@given(value=finite, u=st.floats(0.0, 1e2), lower=st.none() | finite, width=st.floats(0.0, 1e3))
def test_probability_is_a_probability(
    value: float, u: float, lower: float | None, width: float
) -> None:
    upper = None if lower is None else lower + width
    p = probability_of_conformity(value, u, lower, upper)
    assert 0.0 <= p <= 1.0


@given(mid=finite, half=st.floats(1e-3, 1e2), offset=st.floats(0.0, 1e2), u=uncertainty)
def test_probability_is_symmetric_about_the_mid_point(
    mid: float, half: float, offset: float, u: float
) -> None:
    lower, upper = mid - half, mid + half
    left = probability_of_conformity(mid - offset, u, lower, upper)
    right = probability_of_conformity(mid + offset, u, lower, upper)
    assert left == pytest.approx(right, abs=1e-9)


@given(
    half=st.floats(1e-2, 1e2),
    d1=st.floats(0.0, 1e2),
    d2=st.floats(0.0, 1e2),
    u=uncertainty,
)
def test_probability_falls_with_distance_from_the_centre(
    half: float, d1: float, d2: float, u: float
) -> None:
    near, far = sorted((d1, d2))
    assert (
        probability_of_conformity(far, u, -half, half)
        <= probability_of_conformity(near, u, -half, half) + 1e-12
    )
    # One-sided: the closer to (or the further beyond) the upper limit, the lower p_c.
    assert (
        probability_of_conformity(half + far, u, None, half)
        <= probability_of_conformity(half + near, u, None, half) + 1e-12
    )


def test_zero_uncertainty_is_a_step() -> None:
    assert probability_of_conformity(1.0, 0.0, -1.0, 1.0) == 1.0
    assert probability_of_conformity(1.0 + 1e-12, 0.0, -1.0, 1.0) == 0.0
    assert probability_of_conformity(-5.0, 0.0, None, 1.0) == 1.0
    assert decide(0.99, 0.0, -1.0, 1.0, DecisionRule.guard_band_u()).outcome is Outcome.PASS


@given(value=st.floats(-3.0, 3.0), expanded=st.floats(0.0, 0.6), rule=rules)
def test_decisions_are_consistent_with_the_probability(
    value: float, expanded: float, rule: DecisionRule
) -> None:
    """On a symmetric tolerance p_c falls with |y|, so each zone bounds p_c by its edges:
    PASS has p_c >= p_c(A_U); CONDITIONAL_PASS between p_c(T_U) and p_c(A_U); CONDITIONAL_FAIL
    between p_c(T_U + w) and p_c(T_U); FAIL at most p_c(T_U + w)."""
    lower, upper = -1.0, 1.0
    decision = decide(value, expanded, lower, upper, rule)
    u = decision.standard_uncertainty
    w = decision.guard_band

    def p_at(y: float) -> float:
        return probability_of_conformity(y, u, lower, upper)

    p, eps = decision.probability_of_conformity, 1e-12
    if decision.outcome is Outcome.PASS:
        assert p >= p_at(upper - w) - eps
    elif decision.outcome is Outcome.CONDITIONAL_PASS:
        assert p_at(upper) - eps <= p <= p_at(upper - w) + eps
    elif decision.outcome is Outcome.CONDITIONAL_FAIL:
        assert p_at(upper + w) - eps <= p <= p_at(upper) + eps
    else:
        assert p <= p_at(upper + w) + eps
    if rule.kind is RuleKind.SIMPLE:
        assert decision.outcome in (Outcome.PASS, Outcome.FAIL)


@given(rule=rules)
def test_rule_text_round_trips(rule: DecisionRule) -> None:
    assert DecisionRule.parse(str(rule)) == rule
    assert DecisionRule.parse(rule.name.upper()) == rule


def test_rule_parsing() -> None:
    assert DecisionRule.parse("simple") == DecisionRule.simple()
    assert DecisionRule.parse(" Guard_Band_U ") == DecisionRule.guard_band_u()
    assert DecisionRule.parse("risk:0.025") == DecisionRule.specific_risk(0.025)
    assert DecisionRule.parse("risk:2.5%") == DecisionRule.specific_risk(0.025)
    assert DecisionRule.parse("risk:0.01,k=1.96") == DecisionRule.specific_risk(0.01, 1.96)
    assert str(DecisionRule.specific_risk(0.01, 1.96)) == "risk:0.01,k=1.96"
    for bad in ("", "guard", "risk", "risk:abc", "risk:0.7", "risk:0", "simple:0.1", "simple,k=0",
                "simple,q=2", "risk:nan"):  # fmt: skip
        with pytest.raises(DecisionRuleError):
            DecisionRule.parse(bad)


def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(DecisionRuleError):
        probability_of_conformity(0.0, -1.0, -1.0, 1.0)
    with pytest.raises(DecisionRuleError):
        probability_of_conformity(0.0, 1.0, 1.0, -1.0)
    with pytest.raises(DecisionRuleError):
        decide(0.0, float("nan"), -1.0, 1.0, DecisionRule.simple())
    with pytest.raises(DecisionRuleError):
        DecisionRule(RuleKind.GUARD_BAND_U, risk=0.1)


def test_rule_and_decision_survive_a_json_round_trip() -> None:
    """asdict -> JSON -> Cls(**d): enum members come back as plain strings and must still work."""
    import json

    rule = DecisionRule.specific_risk(0.05)
    rebuilt = DecisionRule(**json.loads(json.dumps(dataclasses.asdict(rule))))
    assert rebuilt == rule and rebuilt.kind is RuleKind.SPECIFIC_RISK
    decision = decide(0.1, 0.2, -1.0, 1.0, rule)
    again = Decision(**json.loads(json.dumps(dataclasses.asdict(decision))))
    assert again.accepted and again.within_tolerance and again.outcome == "PASS"
    with pytest.raises(DecisionRuleError):
        DecisionRule(kind="nonsense")  # type: ignore[arg-type]
