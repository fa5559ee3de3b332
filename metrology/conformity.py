"""Conformity decisions that take measurement uncertainty into account.

Sources: JCGM 106:2012 *Evaluation of measurement data - The role of measurement uncertainty in
conformity assessment* (probability of conformity, acceptance limits, specific risk) and
ILAC-G8:09/2019 *Guidelines on Decision Rules and Statements of Conformity* (guard bands, the
non-binary statement of §4.2.3). The decision rule is configuration; every :class:`Decision`
records which rule produced it and the numbers used (ISO/IEC 17025:2017 §7.1.3, §7.8.6).

Tolerances relative to the reading or the span are resolved by the caller with
:meth:`metrology.instrument.Tolerance.limits_at`; here limits are absolute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist

from metrology.errors import DecisionRuleError

__all__ = [
    "Decision",
    "DecisionRule",
    "DecisionRuleError",
    "Outcome",
    "RuleKind",
    "decide",
    "false_accept_risk_at_limit",
    "probability_of_conformity",
]

_SQRT2 = math.sqrt(2.0)
_STANDARD_NORMAL = NormalDist()


def _phi(z: float) -> float:
    """Standard normal CDF through ``erfc``, accurate in both tails."""
    return 0.5 * math.erfc(-z / _SQRT2)


def probability_of_conformity(
    value: float, standard_uncertainty: float, lower: float | None, upper: float | None
) -> float:
    """``p_c = Phi((T_U - y) / u) - Phi((T_L - y) / u)`` for a normal PDF of the measurand.

    JCGM 106:2012 §7.2-7.4 (eqs. 7-9, one-sided limits when ``lower`` or ``upper`` is ``None``).
    With ``u == 0`` it is a step: 1 when ``T_L <= y <= T_U`` (limits included), else 0.
    """
    if not math.isfinite(value):
        raise DecisionRuleError(f"measured value must be finite, got {value}")
    if not (standard_uncertainty >= 0.0 and math.isfinite(standard_uncertainty)):
        raise DecisionRuleError(
            f"standard uncertainty must be finite and >= 0, got {standard_uncertainty}"
        )
    if lower is not None and upper is not None and lower > upper:
        raise DecisionRuleError(f"lower limit {lower} is above upper limit {upper}")
    if standard_uncertainty == 0.0:
        inside = (lower is None or value >= lower) and (upper is None or value <= upper)
        return 1.0 if inside else 0.0
    u = standard_uncertainty
    # P(below T_L) and P(above T_U), each from its own tail so nothing cancels.
    below = 0.0 if lower is None else _phi((lower - value) / u)
    above = 0.0 if upper is None else _phi((value - upper) / u)
    return min(1.0, max(0.0, 1.0 - below - above))


def false_accept_risk_at_limit(guard_band: float, standard_uncertainty: float) -> float:
    """Specific risk of false acceptance for a value on an acceptance limit ``T_U - w``.

    ``Phi(-w / u)`` (JCGM 106:2012 §8.3, counting the near tolerance limit only; ILAC-G8:09/2019
    §4.2.2-4.2.3): 50 % for simple acceptance (``w = 0``), 2.3 % for ``w = U`` with ``k = 2``.
    """
    if standard_uncertainty == 0.0:
        return 0.0 if guard_band > 0.0 else 0.5
    return _phi(-guard_band / standard_uncertainty)


class Outcome(StrEnum):
    """Statement of conformity (ILAC-G8:09/2019 §4.2.3, non-binary statement with guard band)."""

    PASS = "PASS"
    """Measured value inside the acceptance zone."""
    CONDITIONAL_PASS = "CONDITIONAL_PASS"
    """Inside the tolerance, but within the guard band below a limit."""
    CONDITIONAL_FAIL = "CONDITIONAL_FAIL"
    """Outside the tolerance, but by no more than the guard band."""
    FAIL = "FAIL"
    """Outside the tolerance by more than the guard band."""


class RuleKind(StrEnum):
    """How the guard band ``w`` is chosen."""

    SIMPLE = "simple"
    """Simple acceptance, ``w = 0`` (ILAC-G8 §4.2.1): up to 50 % specific risk at the limit."""
    GUARD_BAND_U = "guard_band_u"
    """``w = U`` (ILAC-G8 §4.2.2): 2.3 % specific risk at the acceptance limit for k = 2."""
    SPECIFIC_RISK = "risk"
    """``w = z_(1 - risk) u``: the specific false-acceptance risk at the acceptance limit equals
    ``risk`` (JCGM 106:2012 §8.3.3; ILAC-G8 §4.2.3 "guard band based on a target risk")."""


def _rule_kind(kind: RuleKind | str) -> RuleKind:
    try:
        return RuleKind(kind)
    except ValueError as exc:
        raise DecisionRuleError(f"unknown decision rule kind {kind!r}") from exc


@dataclass(frozen=True, slots=True)
class DecisionRule:
    """A decision rule: the kind of guard band, its target risk, and the coverage factor assumed.

    ``coverage_factor`` is the k of the expanded uncertainty ``U`` handed to :func:`decide`
    (``u = U / k``); certificates usually state k = 2. :func:`decide` takes a per-call override.
    Text form (for configuration), case-insensitive: ``"simple"``, ``"guard_band_u"``,
    ``"risk:0.025"`` (or ``"risk:2.5%"``), each optionally followed by ``",k=<k>"``; ``str(rule)``
    gives the canonical text and ``DecisionRule.parse(str(rule)) == rule``.
    """

    kind: RuleKind = RuleKind.SIMPLE
    risk: float | None = None
    coverage_factor: float = 2.0

    def __post_init__(self) -> None:
        # Accept the plain string a JSON round trip of asdict() gives back.
        object.__setattr__(self, "kind", _rule_kind(self.kind))
        if not (self.coverage_factor > 0.0 and math.isfinite(self.coverage_factor)):
            raise DecisionRuleError(
                f"coverage factor k must be finite and > 0, got {self.coverage_factor}"
            )
        if self.kind is RuleKind.SPECIFIC_RISK:
            if self.risk is None or not 0.0 < self.risk <= 0.5:
                raise DecisionRuleError(
                    f"a specific-risk rule needs a target risk in (0, 0.5], got {self.risk}"
                )
        elif self.risk is not None:
            raise DecisionRuleError(f"rule {self.kind.value!r} takes no target risk")

    @classmethod
    def simple(cls, coverage_factor: float = 2.0) -> DecisionRule:
        """Simple acceptance, ``w = 0``."""
        return cls(RuleKind.SIMPLE, None, coverage_factor)

    @classmethod
    def guard_band_u(cls, coverage_factor: float = 2.0) -> DecisionRule:
        """Guard band equal to the expanded uncertainty, ``w = U``."""
        return cls(RuleKind.GUARD_BAND_U, None, coverage_factor)

    @classmethod
    def specific_risk(cls, risk: float, coverage_factor: float = 2.0) -> DecisionRule:
        """Guard band from a target specific risk of false acceptance (e.g. 0.025)."""
        return cls(RuleKind.SPECIFIC_RISK, risk, coverage_factor)

    @classmethod
    def parse(cls, text: str) -> DecisionRule:
        """The rule named by ``text`` (see the class docstring for the grammar)."""
        spec = text.strip().lower().replace(" ", "")
        head, _, tail = spec.partition(",")
        coverage_factor = 2.0
        if tail:
            key, _, number = tail.partition("=")
            if key != "k" or not number:
                raise DecisionRuleError(
                    f"decision rule {text!r}: expected ',k=<number>' after the rule"
                )
            coverage_factor = _parse_number(number, text)
        name, _, argument = head.partition(":")
        if name == RuleKind.SIMPLE.value and not argument:
            return cls.simple(coverage_factor)
        if name == RuleKind.GUARD_BAND_U.value and not argument:
            return cls.guard_band_u(coverage_factor)
        if name == RuleKind.SPECIFIC_RISK.value and argument:
            if argument.endswith("%"):
                risk = _parse_number(argument[:-1], text) / 100.0
            else:
                risk = _parse_number(argument, text)
            return cls.specific_risk(risk, coverage_factor)
        raise DecisionRuleError(
            f"unknown decision rule {text!r}: expected 'simple', 'guard_band_u' or 'risk:<p>'"
            ", optionally followed by ',k=<k>'"
        )

    @property
    def name(self) -> str:
        """Canonical text of the rule (what a stored decision records)."""
        head = self.kind.value if self.risk is None else f"{self.kind.value}:{self.risk!r}"
        return head if self.coverage_factor == 2.0 else f"{head},k={self.coverage_factor!r}"

    def __str__(self) -> str:
        return self.name

    def guard_band(
        self, expanded_uncertainty: float, coverage_factor: float | None = None
    ) -> float:
        """The guard band ``w`` for expanded uncertainty ``U`` (k: ``coverage_factor`` or own).

        Specific-risk rule: ``w = z_(1 - risk) U / k`` so that ``Phi(-w / u) = risk``
        (JCGM 106:2012 §8.3.3, near limit only).
        """
        if self.kind is RuleKind.SIMPLE:
            return 0.0
        if self.kind is RuleKind.GUARD_BAND_U:
            return expanded_uncertainty
        assert self.risk is not None
        k = self.coverage_factor if coverage_factor is None else coverage_factor
        return _STANDARD_NORMAL.inv_cdf(1.0 - self.risk) * expanded_uncertainty / k


def _parse_number(text: str, whole: str) -> float:
    try:
        number = float(text)
    except ValueError as exc:
        raise DecisionRuleError(f"decision rule {whole!r}: {text!r} is not a number") from exc
    if not math.isfinite(number):
        raise DecisionRuleError(f"decision rule {whole!r}: {text!r} is not finite")
    return number


@dataclass(frozen=True, slots=True)
class Decision:
    """A statement of conformity with every number behind it.

    ``acceptance_lower``/``acceptance_upper`` are ``T_L + w`` / ``T_U - w`` (``None`` for an open
    side); ``probability_of_conformity`` uses ``u = expanded_uncertainty / coverage_factor``;
    ``rule`` is the rule's canonical text.
    """

    outcome: Outcome
    value: float
    expanded_uncertainty: float
    coverage_factor: float
    lower: float | None
    upper: float | None
    guard_band: float
    acceptance_lower: float | None
    acceptance_upper: float | None
    probability_of_conformity: float
    rule: str

    @property
    def accepted(self) -> bool:
        """Binary reading of the rule: accepted only in the acceptance zone (``PASS``)."""
        return self.outcome == Outcome.PASS

    @property
    def within_tolerance(self) -> bool:
        """The measured value lies within the tolerance (``PASS`` or ``CONDITIONAL_PASS``)."""
        return self.outcome in (Outcome.PASS, Outcome.CONDITIONAL_PASS)

    @property
    def standard_uncertainty(self) -> float:
        """``u = U / k``."""
        return self.expanded_uncertainty / self.coverage_factor


def decide(
    value: float,
    expanded_uncertainty: float,
    lower: float | None,
    upper: float | None,
    rule: DecisionRule,
    *,
    coverage_factor: float | None = None,
) -> Decision:
    """Judge ``value`` (expanded uncertainty ``U``) against ``[lower, upper]`` under ``rule``.

    Non-binary statement of ILAC-G8:09/2019 §4.2.3 with guard band ``w`` from the rule and
    acceptance limits ``A_L = T_L + w``, ``A_U = T_U - w`` (JCGM 106:2012 §8.3):

    - PASS: ``A_L <= y <= A_U`` (the acceptance zone);
    - CONDITIONAL_PASS: ``T_L <= y <= T_U`` but in the guard band inside a limit;
    - CONDITIONAL_FAIL: outside the tolerance by at most ``w``;
    - FAIL: outside by more than ``w``.

    With simple acceptance (``w = 0``) only PASS and FAIL occur. When the guard bands overlap
    (``2 w >= T_U - T_L``) there is no acceptance zone and no value can PASS.
    ``coverage_factor`` (default: the rule's) converts ``U`` to ``u`` for ``p_c`` and for the
    specific-risk guard band.
    """
    if not (expanded_uncertainty >= 0.0 and math.isfinite(expanded_uncertainty)):
        raise DecisionRuleError(
            f"expanded uncertainty must be finite and >= 0, got {expanded_uncertainty}"
        )
    k = rule.coverage_factor if coverage_factor is None else coverage_factor
    if not (k > 0.0 and math.isfinite(k)):
        raise DecisionRuleError(f"coverage factor k must be finite and > 0, got {k}")
    p_c = probability_of_conformity(value, expanded_uncertainty / k, lower, upper)
    w = rule.guard_band(expanded_uncertainty, k)
    accept_lower = None if lower is None else lower + w
    accept_upper = None if upper is None else upper - w

    if (lower is None or value >= lower) and (upper is None or value <= upper):
        in_acceptance_zone = (accept_lower is None or value >= accept_lower) and (
            accept_upper is None or value <= accept_upper
        )
        outcome = Outcome.PASS if in_acceptance_zone else Outcome.CONDITIONAL_PASS
    else:
        beyond = lower - value if lower is not None and value < lower else 0.0
        if upper is not None and value > upper:
            beyond = value - upper
        outcome = Outcome.CONDITIONAL_FAIL if beyond <= w else Outcome.FAIL

    return Decision(
        outcome=outcome,
        value=value,
        expanded_uncertainty=expanded_uncertainty,
        coverage_factor=k,
        lower=lower,
        upper=upper,
        guard_band=w,
        acceptance_lower=accept_lower,
        acceptance_upper=accept_upper,
        probability_of_conformity=p_c,
        rule=rule.name,
    )
