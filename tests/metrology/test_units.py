"""Units: a unit string is hostile input; only a finite linear map to the registered unit passes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrology.errors import UnitError
from metrology.units import (
    MAX_PINT_MEMO,
    LinearConversion,
    UnitProblem,
    UnitRefusal,
    check_unit,
    find_conversion,
    linear_conversion,
    unit_registry,
)

TRAPS = {
    # parse errors of every type pint raises, and powers that would compute for hours
    "9**9**9": UnitProblem.UNKNOWN,
    "m**10**10**10": UnitProblem.UNKNOWN,
    "9⁹⁹⁹⁹⁹⁹⁹⁹⁹": UnitProblem.UNKNOWN,
    "(((9**999)**999)**999)**999": UnitProblem.UNKNOWN,
    "m^2^2^2^2^2": UnitProblem.UNKNOWN,
    "1/0": UnitProblem.UNKNOWN,  # ZeroDivisionError
    "0**-1": UnitProblem.UNKNOWN,
    "()": UnitProblem.UNKNOWN,  # AssertionError
    "@": UnitProblem.UNKNOWN,
    ")": UnitProblem.UNKNOWN,  # tokenize.TokenError
    "m**0": UnitProblem.UNKNOWN,  # KeyError
    "m+s": UnitProblem.UNKNOWN,  # TypeError
    "1+/-2": UnitProblem.UNKNOWN,  # DefinitionSyntaxError
    "2*m": UnitProblem.UNKNOWN,  # ValueError: a scaling factor
    "furlongz": UnitProblem.UNKNOWN,  # UndefinedUnitError
    "deg\x00C": UnitProblem.UNKNOWN,
    "x" * 65: UnitProblem.UNKNOWN,
    # parsed, but no finite linear map to degC
    "kPa": UnitProblem.NOT_CONVERTIBLE,  # another dimension
    "delta_degC": UnitProblem.NOT_CONVERTIBLE,  # a temperature difference, not a temperature
    "degC**2": UnitProblem.NOT_CONVERTIBLE,
    "": UnitProblem.NOT_CONVERTIBLE,  # dimensionless
}


@pytest.mark.parametrize("unit", sorted(TRAPS))
def test_traps_are_refused_with_their_problem(unit: str) -> None:
    found = find_conversion(unit, "degC")
    assert isinstance(found, UnitRefusal)
    assert found.problem is TRAPS[unit], found.detail


@pytest.mark.parametrize(
    ("unit", "target", "detail"),
    [
        ("Ym**15/ym**15", "percent", "OverflowError"),  # the factor overflows
        ("ym**15/Ym**15", "percent", "no finite linear map (scale 0.0, offset 0.0)"),
        ("mW", "dBm", "no finite linear map (scale inf, offset -inf)"),
        ("dBm", "mW", "the conversion is not linear (a logarithmic unit)"),
        ("dB", "percent", "the conversion is not linear (a logarithmic unit)"),
        ("octave", "percent", "the conversion is not linear (a logarithmic unit)"),
        ("decade", "percent", "the conversion is not linear (a logarithmic unit)"),
    ],
)
def test_no_finite_linear_map_is_not_convertible(unit: str, target: str, detail: str) -> None:
    found = find_conversion(unit, target)
    assert isinstance(found, UnitRefusal)
    assert found.problem is UnitProblem.NOT_CONVERTIBLE
    assert found.detail.startswith(f"unit {unit!r} cannot be converted to {target!r}: ")
    assert detail in found.detail


@pytest.mark.parametrize(
    ("unit", "target", "scale", "offset"),
    [
        ("degF", "degC", 5 / 9, -160 / 9),
        ("K", "degC", 1.0, -273.15),
        ("mK", "degC", 1e-3, -273.15),
        ("bar", "kPa", 100.0, 0.0),
        ("L/min", "m**3/h", 0.06, 0.0),
        ("°C", "degC", 1.0, 0.0),
        ("m³/h", "m**3/h", 1.0, 0.0),
        ("µm", "m", 1e-6, 0.0),
        ("%RH", "percent", 1.0, 0.0),
        ("%", "percent_RH", 1.0, 0.0),
        ("Ym**2/ym**2", "percent", 1e98, 0.0),  # finite: values beyond 1e210 overflow later
    ],
)
def test_linear_maps(unit: str, target: str, scale: float, offset: float) -> None:
    found = find_conversion(unit, target)
    assert isinstance(found, LinearConversion), found
    assert found.scale == pytest.approx(scale, rel=1e-12)
    assert found.offset == pytest.approx(offset, rel=1e-12, abs=1e-12)


def test_an_offset_unit_keeps_its_digits() -> None:
    """The scale comes from a far point: mK to degC loses nothing to the -273.15 offset."""
    found = find_conversion("mK", "degC")
    assert isinstance(found, LinearConversion)
    assert found(294_650.0) == pytest.approx(21.5, abs=1e-10)


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        st.text(alphabet="m9()*/^.-+ %°²³⁹µΩdegCKPa_[]{}@!,", max_size=20),
    )
)
def test_any_text_is_a_conversion_or_a_refusal_never_an_exception(unit: str) -> None:
    found = find_conversion(unit, "degC")
    if isinstance(found, UnitRefusal):
        assert found.problem in (UnitProblem.UNKNOWN, UnitProblem.NOT_CONVERTIBLE)
        assert found.detail
        return
    assert math.isfinite(found.scale) and found.scale != 0.0 and math.isfinite(found.offset)
    # accepted: pint itself maps it linearly and finitely onto degC
    registry = unit_registry()
    source = registry.Unit(unit)
    for x in (-3.5, 0.0, 1.0, 250.0):
        direct = registry.Quantity(x, source).to("degC").magnitude
        assert found(x) == pytest.approx(direct, rel=1e-9, abs=1e-9)


def test_refusals_raise_unit_errors_for_trusted_callers() -> None:
    with pytest.raises(UnitError, match=r"unknown unit 'furlongz' \(UndefinedUnitError: "):
        linear_conversion("furlongz", "m")
    with pytest.raises(UnitError, match="cannot be parsed: a power must be a number"):
        check_unit("9**9**9")
    check_unit("m**3/h")


def test_the_caches_stay_bounded() -> None:
    """Every distinct unit string is a new entry in pint's memo; it is reset when full."""
    assert find_conversion.cache_info().maxsize == 4096
    memo = unit_registry()._cache
    for whole in range(12):
        for fraction in range(1_000):
            find_conversion(f"m**{whole}.{fraction:03d}", "m")
    sizes = {name: len(value) for name, value in vars(memo).items() if isinstance(value, dict)}
    assert max(sizes.values()) <= MAX_PINT_MEMO + 1, sizes
    assert find_conversion.cache_info().currsize <= 4096
    assert find_conversion("bar", "kPa") == LinearConversion(100.0, 0.0)  # works after a reset
