"""Reference values from redundant peers: the consensus of instruments measuring the same quantity.

When no check standard or co-located reference is available, the reference for one instrument is
the weighted mean of its peers at the same point and time, the instrument under test excluded so a
drifting instrument cannot drag its own reference (METROLOGY.md, "Drift detection", source 2).
Consistency is checked with the chi-square test of Cox (2002, Metrologia 39:589, procedure A);
an inconsistent set is reduced towards its largest consistent subset (Cox 2007, Metrologia
44:187) by repeatedly dropping the value contributing most to chi-square, as in nuclear on-line
monitoring practice (NUREG/CR-6895). Runs per reading of a peer group (3-10 instruments), so
it is plain Python over short lists with one special-function call per test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.special import chdtrc  # type: ignore[import-untyped, unused-ignore]

from metrology.errors import ConsensusError

__all__ = [
    "Consensus",
    "ConsensusError",
    "PeerValue",
    "consensus",
    "residual_uncertainty",
    "weighted_mean",
]


@dataclass(frozen=True, slots=True)
class PeerValue:
    """One peer's corrected value and its standard uncertainty, in the group's common unit."""

    instrument_id: str
    value: float
    standard_uncertainty: float


@dataclass(frozen=True, slots=True)
class Consensus:
    """The reference value from a peer group, with the consistency test behind it.

    ``chi2 = sum((x_i - y)^2 / u_i^2)`` over the ``used`` peers, ``dof = len(used) - 1``,
    ``p_value = P(chi2_dof > chi2)``; ``consistent`` when ``p_value >= alpha``. ``excluded``
    lists the peers dropped as inconsistent, in the order they were dropped; the instrument
    under test appears in neither tuple. ``consistent`` is False only when no subset of at least
    ``min_peers`` peers passed: the value is then that of the last subset tried, and should not
    be trusted as a reference.
    """

    value: float
    standard_uncertainty: float
    chi2: float
    dof: int
    p_value: float
    consistent: bool
    used: tuple[str, ...]
    excluded: tuple[str, ...]


def _check(peer: PeerValue) -> None:
    if not math.isfinite(peer.value):
        raise ConsensusError(f"peer {peer.instrument_id!r}: value must be finite, got {peer.value}")
    u = peer.standard_uncertainty
    if not (u > 0.0 and math.isfinite(u)):
        raise ConsensusError(
            f"peer {peer.instrument_id!r}: standard uncertainty must be finite and > 0, got {u}"
        )


def _weighted(values: Sequence[PeerValue]) -> tuple[float, float]:
    weight_sum = 0.0
    weighted_sum = 0.0
    for peer in values:
        weight = 1.0 / (peer.standard_uncertainty * peer.standard_uncertainty)
        weight_sum += weight
        weighted_sum += weight * peer.value
    return weighted_sum / weight_sum, math.sqrt(1.0 / weight_sum)


def weighted_mean(values: Sequence[PeerValue]) -> tuple[float, float]:
    """``(y, u(y))``: ``y = sum(x_i / u_i^2) / sum(1 / u_i^2)``, ``u(y)^2 = 1 / sum(1 / u_i^2)``.

    The inverse-variance weighted mean of independent values (Cox 2002, Metrologia 39:589,
    procedure A, eqs. 1-2).
    """
    if not values:
        raise ConsensusError("the weighted mean of no values is undefined")
    for peer in values:
        _check(peer)
    return _weighted(values)


def consensus(
    peers: Sequence[PeerValue],
    exclude: str | None = None,
    alpha: float = 0.05,
    min_peers: int = 2,
) -> Consensus | None:
    """The consensus of ``peers`` without instrument ``exclude``; ``None`` if too few remain.

    The weighted mean is accepted when ``P(chi2_(n-1) > chi2_obs) >= alpha`` (Cox 2002,
    procedure A). Otherwise the peer with the largest contribution ``(x_i - y)^2 / u_i^2`` is
    dropped and the test repeated, while at least ``min_peers`` would remain (Cox 2007's
    largest consistent subset, found greedily: exact search over all subsets costs
    ``2^n`` tests per reading). ``None`` when fewer than ``min_peers`` peers remain after
    removing ``exclude``; a result with ``consistent=False`` when no consistent subset of
    ``min_peers`` or more was found.
    """
    if not 0.0 < alpha < 1.0:
        raise ConsensusError(f"alpha must be in (0, 1), got {alpha}")
    if min_peers < 1:
        raise ConsensusError(f"min_peers must be >= 1, got {min_peers}")
    pool = [peer for peer in peers if peer.instrument_id != exclude]
    if len(pool) < min_peers:
        return None
    for peer in pool:
        _check(peer)

    dropped: list[str] = []
    while True:
        y, u_y = _weighted(pool)
        contributions = [((p.value - y) / p.standard_uncertainty) ** 2 for p in pool]
        chi2 = math.fsum(contributions)
        dof = len(pool) - 1
        p_value = float(chdtrc(dof, chi2)) if dof > 0 else 1.0
        consistent = p_value >= alpha
        if consistent or len(pool) - 1 < min_peers:
            return Consensus(
                value=y,
                standard_uncertainty=u_y,
                chi2=chi2,
                dof=dof,
                p_value=p_value,
                consistent=consistent,
                used=tuple(p.instrument_id for p in pool),
                excluded=tuple(dropped),
            )
        worst = max(range(len(pool)), key=contributions.__getitem__)
        dropped.append(pool.pop(worst).instrument_id)


def residual_uncertainty(u_instrument: float, u_reference: float) -> float:
    """``u(e) = sqrt(u_x^2 + u_r^2)`` for the residual ``e = x - r`` of independent x and r.

    JCGM 100:2008 (GUM) eq. 10 with unit sensitivity coefficients; independence holds for a peer
    consensus because the instrument under test is excluded from it.
    """
    return math.hypot(u_instrument, u_reference)
