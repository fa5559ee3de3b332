"""Multi-point correction curves: validation, interpolation, extrapolation, use in a record."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrology.calibration import CalibrationHistory, CalibrationRecord, Correction
from metrology.curves import CurveCorrection
from metrology.errors import CalibrationError

# A certificate table for a Pt100 channel, degC: (indication, correction to add).
TABLE = ((0.0, 0.12), (50.0, 0.05), (100.0, -0.03), (200.0, -0.20))


def test_worked_example_linear_between_points() -> None:
    """EURAMET cg-18 v4.0 Annex A: linear interpolation between adjacent certificate points.

    At 75.0 (between 50.0 -> +0.05 and 100.0 -> -0.03) the fraction is 25 / 50 = 0.5, so
    c = 0.05 + 0.5 * (-0.03 - 0.05) = 0.01 and the corrected value is 75.01.
    At 150.0: c = -0.03 + 0.5 * (-0.20 + 0.03) = -0.115, corrected 149.885.
    """
    curve = CurveCorrection(TABLE)
    assert curve.correction_at(75.0) == pytest.approx(0.01, abs=1e-15)
    assert curve.apply(75.0) == pytest.approx(75.01, abs=1e-12)
    assert curve.apply(150.0) == pytest.approx(149.885, abs=1e-12)
    evaluation = curve.evaluate(150.0)
    assert evaluation.correction == pytest.approx(-0.115)
    assert not evaluation.extrapolated


def test_outside_range_holds_end_correction_and_flags_it() -> None:
    """Below 0.0 the correction stays +0.12, above 200.0 it stays -0.20; both flagged."""
    curve = CurveCorrection(TABLE)
    assert curve.apply(-10.0) == pytest.approx(-9.88, abs=1e-12)
    assert curve.apply(250.0) == pytest.approx(249.80, abs=1e-12)
    assert curve.evaluate(-10.0).extrapolated
    assert curve.evaluate(250.0).extrapolated
    assert curve.covers(0.0) and curve.covers(200.0) and not curve.covers(200.0001)
    assert curve.calibrated_range == (0.0, 200.0)


@pytest.mark.parametrize(
    "points",
    [
        [(0.0, 0.1)],
        [],
        [(0.0, 0.1), (0.0, 0.2)],
        [(1.0, 0.1), (0.0, 0.2)],
        [(0.0, math.nan), (1.0, 0.2)],
        [(0.0, 0.1), (math.inf, 0.2)],
        [(0.0, 0.1, 5.0), (1.0, 0.2)],
    ],
)
def test_invalid_tables_are_refused(points: list[tuple[float, ...]]) -> None:
    with pytest.raises(CalibrationError):
        CurveCorrection(points)  # type: ignore[arg-type]


def test_points_are_normalised_to_a_tuple_of_float_pairs() -> None:
    curve = CurveCorrection([[0, 1], [2, 3]])  # type: ignore[arg-type]
    assert curve.points == ((0.0, 1.0), (2.0, 3.0))
    assert curve == CurveCorrection(((0.0, 1.0), (2.0, 3.0)))


def test_record_accepts_curve_and_history_corrects_with_it() -> None:
    curve = CurveCorrection(TABLE)
    record = CalibrationRecord("TT-1", "CAL-C", 1000.0, curve, 0.1, 2.0, 365.0)
    history = CalibrationHistory([record])
    corrected, used = history.correct(2000.0, 75.0)
    assert used is record
    assert corrected == pytest.approx(75.01, abs=1e-12)
    # The gain/offset correction stays the usual case, unchanged.
    plain = CalibrationRecord("TT-1", "CAL-P", 5000.0, Correction(0.5, 2.0), 0.1, 2.0, 365.0)
    assert history.with_record(plain).correct(6000.0, 3.0) == (6.5, plain)


def test_record_refuses_a_correction_without_apply() -> None:
    with pytest.raises(CalibrationError):
        CalibrationRecord("TT-1", "CAL-X", 0.0, object(), 0.1, 2.0, 365.0)  # type: ignore[arg-type]


# --- properties ------------------------------------------------------------------------------

_finite = st.floats(-1e3, 1e3, allow_nan=False).map(lambda v: round(v, 6))


@st.composite
def tables(draw: st.DrawFn) -> tuple[tuple[float, float], ...]:
    xs = sorted(draw(st.sets(_finite, min_size=2, max_size=12)))
    cs = draw(st.lists(st.floats(-5.0, 5.0), min_size=len(xs), max_size=len(xs)))
    return tuple(zip(xs, cs, strict=True))


@given(tables(), st.floats(-2e3, 2e3))
def test_correction_within_min_max_of_point_corrections(
    table: tuple[tuple[float, float], ...], x: float
) -> None:
    """Linear interpolation (and holding the ends) never leaves [min c_i, max c_i]."""
    curve = CurveCorrection(table)
    cs = [c for _, c in table]
    c = curve.correction_at(x)
    slack = 4 * np.finfo(float).eps * max(1.0, max(abs(v) for v in cs))
    assert min(cs) - slack <= c <= max(cs) + slack
    assert curve.apply(x) == x + c


@given(tables())
def test_exact_at_the_points(table: tuple[tuple[float, float], ...]) -> None:
    curve = CurveCorrection(table)
    for x, c in table:
        assert curve.correction_at(x) == c
        assert not curve.evaluate(x).extrapolated


@given(tables(), st.data())
def test_linear_between_adjacent_points_and_equal_to_numpy_interp(
    table: tuple[tuple[float, float], ...], data: st.DataObject
) -> None:
    """Between x_j and x_j+1 the correction lies on the chord; numpy.interp agrees everywhere."""
    curve = CurveCorrection(table)
    j = data.draw(st.integers(0, len(table) - 2))
    (x0, c0), (x1, c1) = table[j], table[j + 1]
    fraction = data.draw(st.floats(0.0, 1.0))
    x = x0 + fraction * (x1 - x0)
    expected = c0 + (c1 - c0) * (x - x0) / (x1 - x0)
    scale = max(1.0, abs(c0), abs(c1))
    assert curve.correction_at(x) == pytest.approx(expected, abs=1e-9 * scale)
    xs = np.array([p[0] for p in table])
    cs = np.array([p[1] for p in table])
    probe = data.draw(st.floats(-2e3, 2e3))
    assert curve.correction_at(probe) == pytest.approx(
        float(np.interp(probe, xs, cs)), abs=1e-9 * scale
    )
