"""The conformity judgement of a residual under the decision rule (ILAC-G8:09/2019).

Two forms of one test: :func:`accepted`, the bare acceptance-zone test `step` runs for every
residual to latch OUT_OF_TOLERANCE, and :func:`conformity_decision`, the full statement with the
probability of conformity that a health snapshot reports (:func:`metrology.conformity.decide`).
"""

from __future__ import annotations

from metrology.conformity import Decision, DecisionRule, decide
from stream_processors.state import Judgement

__all__ = ["COVERAGE_FACTOR", "accepted", "conformity_decision"]

COVERAGE_FACTOR = 2.0
"""k used to expand u(e) for the conformity decision (about 95 % for a normal distribution,
JCGM 100 §6.3)."""


def accepted(judgement: Judgement, rule: DecisionRule) -> bool:
    """Whether the residual lies in the acceptance zone of ``rule`` (ILAC-G8:09/2019 §4.2).

    The acceptance limits are the tolerance limits moved inwards by the rule's guard band
    ``w`` (0 for simple acceptance, U for w = U, or from a target specific risk), with
    ``U = k u(e)``. This is the test behind :func:`metrology.conformity.decide`, inlined
    because it runs for every residual; :func:`conformity_decision` gives the full statement.
    """
    residual = judgement.residual
    assert residual is not None and judgement.u_residual is not None
    w = rule.guard_band(COVERAGE_FACTOR * judgement.u_residual)
    if judgement.lower is not None and residual < judgement.lower + w:
        return False
    return judgement.upper is None or residual <= judgement.upper - w


def conformity_decision(judgement: Judgement, rule: DecisionRule) -> Decision | None:
    """The statement of conformity of the judged residual (ILAC-G8:09/2019 §4.2.3), or ``None``
    before a residual with its uncertainty was judged."""
    if judgement.residual is None or judgement.u_residual is None:
        return None
    return decide(
        judgement.residual,
        COVERAGE_FACTOR * judgement.u_residual,
        judgement.lower,
        judgement.upper,
        rule,
    )
