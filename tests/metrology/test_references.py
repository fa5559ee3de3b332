"""Peer consensus as a reference value (Cox 2002/2007 weighted mean and chi-square check)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from metrology.references import (
    Consensus,
    ConsensusError,
    PeerValue,
    consensus,
    residual_uncertainty,
    weighted_mean,
)


def peers(*rows: tuple[str, float, float]) -> list[PeerValue]:
    return [PeerValue(name, value, u) for name, value, u in rows]


def test_weighted_mean_against_direct_computation() -> None:
    """y = sum(x/u^2)/sum(1/u^2), u(y) = sum(1/u^2)^(-1/2) (Cox 2002 procedure A); the
    expected numbers are computed directly here with numpy, not copied from a publication."""
    group = peers(("a", 10.1, 0.1), ("b", 9.9, 0.2), ("c", 10.05, 0.05))
    x = np.array([10.1, 9.9, 10.05])
    w = 1.0 / np.array([0.1, 0.2, 0.05]) ** 2
    y, u = weighted_mean(group)
    assert y == pytest.approx(float((w * x).sum() / w.sum()))
    assert u == pytest.approx(float(1.0 / math.sqrt(w.sum())))
    # Equal uncertainties: the arithmetic mean, with u / sqrt(n).
    y, u = weighted_mean(peers(("a", 1.0, 0.3), ("b", 2.0, 0.3), ("c", 4.0, 0.3), ("d", 5.0, 0.3)))
    assert y == pytest.approx(3.0) and u == pytest.approx(0.15)


def test_consensus_excludes_the_instrument_under_test() -> None:
    group = peers(("a", 10.0, 0.1), ("b", 10.02, 0.1), ("c", 9.99, 0.1), ("dut", 15.0, 0.1))
    result = consensus(group, exclude="dut")
    assert result is not None
    assert result.used == ("a", "b", "c") and result.excluded == ()
    assert result.value == pytest.approx(10.0033333333)
    assert result.consistent and result.dof == 2
    assert result.p_value == pytest.approx(stats.chi2.sf(result.chi2, 2))
    chi2 = sum(((x - result.value) / 0.1) ** 2 for x in (10.0, 10.02, 9.99))
    assert result.chi2 == pytest.approx(chi2)


def test_consensus_drops_a_drifting_peer() -> None:
    """Cox 2007 largest consistent subset (greedy): the peer contributing most to chi2 goes."""
    group = peers(
        ("a", 20.00, 0.05),
        ("b", 20.03, 0.05),
        ("c", 19.98, 0.05),
        ("d", 20.60, 0.05),
        ("e", 20.01, 0.05),
        ("dut", 20.0, 0.05),
    )
    result = consensus(group, exclude="dut")
    assert result is not None
    assert result.excluded == ("d",)
    assert result.used == ("a", "b", "c", "e")
    assert result.consistent and result.p_value >= 0.05
    assert result.value == pytest.approx(np.mean([20.00, 20.03, 19.98, 20.01]))
    assert result.standard_uncertainty == pytest.approx(0.05 / 2)


def test_consensus_needs_min_peers_and_reports_inconsistency() -> None:
    assert consensus(peers(("a", 1.0, 0.1), ("dut", 1.0, 0.1)), exclude="dut") is None
    assert consensus([], exclude=None) is None
    single = consensus(peers(("a", 1.0, 0.1)), min_peers=1)
    assert single is not None and single.consistent and single.dof == 0 and single.p_value == 1.0
    # Two peers 10 u apart: no consistent pair, and dropping one would leave fewer than 2.
    split = consensus(peers(("a", 0.0, 0.1), ("b", 1.0, 0.1)))
    assert split is not None and not split.consistent and split.used == ("a", "b")
    assert split.p_value < 0.05


def test_inputs_are_validated() -> None:
    with pytest.raises(ConsensusError):
        consensus(peers(("a", 1.0, 0.0), ("b", 1.0, 0.1)))
    with pytest.raises(ConsensusError):
        consensus(peers(("a", math.nan, 0.1), ("b", 1.0, 0.1)))
    with pytest.raises(ConsensusError):
        weighted_mean([])
    with pytest.raises(ConsensusError):
        consensus(peers(("a", 1.0, 0.1), ("b", 1.0, 0.1)), alpha=0.0)


peer_groups = st.lists(
    st.tuples(st.floats(-100.0, 100.0), st.floats(0.01, 10.0)), min_size=0, max_size=10
).map(lambda rows: [PeerValue(f"p{i}", x, u) for i, (x, u) in enumerate(rows)])


@given(peer_groups, st.sampled_from([None, "p0", "p3"]), st.sampled_from([0.01, 0.05, 0.2]))
def test_consensus_invariants(group: list[PeerValue], exclude: str | None, alpha: float) -> None:
    result = consensus(group, exclude=exclude, alpha=alpha)
    pool = [p for p in group if p.instrument_id != exclude]
    if len(pool) < 2:
        assert result is None
        return
    assert result is not None
    assert exclude not in result.used and exclude not in result.excluded
    assert sorted(result.used + result.excluded) == sorted(p.instrument_id for p in pool)
    assert len(result.used) >= 2 and result.dof == len(result.used) - 1
    used = [p for p in pool if p.instrument_id in result.used]
    y, u = weighted_mean(used)
    assert result.value == pytest.approx(y) and result.standard_uncertainty == pytest.approx(u)
    chi2 = sum(((p.value - y) / p.standard_uncertainty) ** 2 for p in used)
    assert result.chi2 == pytest.approx(chi2, rel=1e-9, abs=1e-12)
    assert result.p_value == pytest.approx(stats.chi2.sf(chi2, result.dof), rel=1e-6, abs=1e-300)
    assert result.consistent == (result.p_value >= alpha)
    if not result.consistent:
        assert len(result.used) == 2  # only stops early when no smaller subset is allowed
    if not result.excluded:
        assert result.used == tuple(p.instrument_id for p in pool)


def test_consensus_is_a_plain_value() -> None:
    result = consensus(peers(("a", 1.0, 0.1), ("b", 1.1, 0.1), ("c", 0.95, 0.1)))
    assert result is not None
    assert Consensus(**dataclasses.asdict(result)) == result


def test_residual_uncertainty_adds_in_quadrature() -> None:
    """GUM (JCGM 100:2008) eq. 10 for e = x - r with independent x and r."""
    assert residual_uncertainty(0.3, 0.4) == pytest.approx(0.5)
    assert residual_uncertainty(0.0, 0.2) == pytest.approx(0.2)


@pytest.mark.parametrize("module", ["detectors", "drift", "conformity", "references"])
def test_public_api_is_listed_and_present(module: str) -> None:
    """Every name in ``__all__`` exists (the public API the stream processors import)."""
    import importlib

    loaded = importlib.import_module(f"metrology.{module}")
    assert loaded.__all__ == sorted(loaded.__all__)
    for name in loaded.__all__:
        assert hasattr(loaded, name), name
