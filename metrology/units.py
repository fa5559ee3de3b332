"""Unit conversion with pint, reduced to a cached linear map for the hot path.

Every value carries a unit and is converted at ingest to the instrument's registered unit
(METROLOGY.md, "Units"). pint resolves the conversion once per (from, to) pair; afterwards a
reading costs one multiply-add. Offset units (degC, degF) are linear maps too.

A unit string from a gateway is hostile input. :func:`find_conversion` never raises on it: it
returns the :class:`LinearConversion` or a :class:`UnitRefusal` saying why there is none:

- :attr:`UnitProblem.UNKNOWN`: the text cannot be parsed or names no unit pint defines. pint's
  parser raises many types for arbitrary text (``UndefinedUnitError``, ``DefinitionSyntaxError``,
  ``tokenize.TokenError``, ``AssertionError``, ``ZeroDivisionError``, ``KeyError``,
  ``TypeError``, ``ValueError``, ...; :data:`_PARSE_ERRORS`), and it evaluates number powers
  exactly, so ``9**9**9`` would compute for hours: powers are screened before pint sees the
  text (:func:`_screen`).
- :attr:`UnitProblem.NOT_CONVERTIBLE`: the unit parses but no finite linear map leads to the
  registered unit: another dimension (``DimensionalityError``), offset-unit arithmetic
  (``OffsetUnitCalculusError``), a factor that overflows (``OverflowError``) or underflows to
  zero, or a logarithmic unit (``dBm`` to ``mW``), whose map is not linear.

Only a map ``to = scale * from + offset`` with a finite, non-zero ``scale`` and a finite
``offset`` is accepted. Both caches are bounded: :func:`find_conversion` keeps the last 4,096
pairs, and pint's own memo of parsed strings is reset to its state after start-up once it
holds more than :data:`MAX_PINT_MEMO` entries (pint never forgets a string it parsed).
"""

from __future__ import annotations

import math
import re
import tokenize
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

import numpy as np
import pint
from pint.util import string_preprocessor

from metrology.errors import UnitError

MAX_UNIT_LENGTH = 64
"""Longer unit strings are refused unread (the wire contract allows 32 characters)."""
MAX_PINT_MEMO = 10_000
"""Entries pint may memoise per cache before it is reset to its state after start-up."""


@dataclass(frozen=True, slots=True)
class LinearConversion:
    """``to = scale * from + offset``."""

    scale: float
    offset: float

    def __call__(self, value: float) -> float:
        return self.scale * value + self.offset


IDENTITY = LinearConversion(1.0, 0.0)


class UnitProblem(StrEnum):
    """Why a unit string has no conversion to a registered unit."""

    UNKNOWN = "unknown"
    """It cannot be parsed, or it names no unit pint defines."""
    NOT_CONVERTIBLE = "not_convertible"
    """It parses, but no finite linear map leads to the registered unit."""


@dataclass(frozen=True, slots=True)
class UnitRefusal:
    """A unit string refused, with the problem and a sentence for the dead letter."""

    problem: UnitProblem
    detail: str


_PARSE_ERRORS: tuple[type[BaseException], ...] = (
    pint.errors.PintError,  # UndefinedUnitError, DefinitionSyntaxError, ...
    tokenize.TokenError,  # unbalanced brackets
    AssertionError,  # pint's evaluator asserts on shapes it cannot build ("()", "@", "\x00")
    ArithmeticError,  # ZeroDivisionError ("1/0"), OverflowError
    LookupError,  # KeyError ("m**0")
    TypeError,  # "m**m", "m+s"
    ValueError,  # "2*m": a unit cannot have a scaling factor
    AttributeError,
    RecursionError,
)
"""What pint raises while parsing arbitrary text (found by fuzzing pint 0.25 with hypothesis)."""

_CONVERSION_ERRORS: tuple[type[BaseException], ...] = (
    pint.errors.DimensionalityError,
    pint.errors.OffsetUnitCalculusError,
    pint.errors.LogarithmicUnitCalculusError,
    ArithmeticError,  # OverflowError ("Ym**15/ym**15" to percent), ZeroDivisionError
    ValueError,
    TypeError,
)
"""What pint raises converting between units that parsed."""

# pint evaluates powers of numbers exactly ("9**9**9" is a 370-million-digit integer), so
# before pint parses a string every power must be a short literal exponent, not itself raised
# to a power, and no bracketed expression may be raised to a power.
_POWER = re.compile(r"\*\*")
_SHORT_EXPONENT = re.compile(
    r"\*\*\s*(?:\(\s*[-+]?\s*(?:\d{1,3}(?:\.\d{0,3})?|\.\d{1,3})\s*\)"
    r"|[-+]?\s*(?:\d{1,3}(?:\.\d{0,3})?|\.\d{1,3}))(?![\d.eE])(?!\s*\*\*)"
)
_RAISED_BRACKET = re.compile(r"\)\s*\*\*")


@lru_cache(maxsize=1)
def _registry_and_memo() -> tuple[pint.UnitRegistry[float], dict[str, dict[Any, Any]]]:
    registry: pint.UnitRegistry[float] = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    # Common spellings on instrument gateways that pint does not know by default. pint reads
    # "%" as " percent " before anything else, so "%RH" is rewritten ahead of that.
    registry.define("percent_RH = percent")
    registry.preprocessors.insert(0, lambda text: text.replace("%RH", "percent_RH"))
    return registry, _memo_of(registry)


def unit_registry() -> pint.UnitRegistry[float]:
    """The one pint registry (building it takes a fraction of a second, so it is built once)."""
    return _registry_and_memo()[0]


def _memo_of(registry: pint.UnitRegistry[float]) -> dict[str, dict[Any, Any]]:
    """Copies of pint's memo dictionaries (its ``RegistryCache``, an implementation detail)."""
    cache = registry._cache
    return {name: dict(value) for name, value in vars(cache).items() if isinstance(value, dict)}


def _bound_pint_memo(registry: pint.UnitRegistry[float]) -> None:
    """Reset pint's memo to its state after start-up once any of its dictionaries is full."""
    cache = registry._cache
    if any(len(value) > MAX_PINT_MEMO for value in vars(cache).values() if isinstance(value, dict)):
        for name, value in _registry_and_memo()[1].items():
            setattr(cache, name, dict(value))


def _screen(unit: str, registry: pint.UnitRegistry[float]) -> str | None:
    """Why ``unit`` must not reach pint's parser, or None if it may."""
    if len(unit) > MAX_UNIT_LENGTH:
        return f"longer than {MAX_UNIT_LENGTH} characters"
    if not unit.isprintable():
        return "control characters"
    text = unit
    for preprocess in registry.preprocessors:
        text = preprocess(text)
    text = string_preprocessor(text)  # what pint's parser reads: "^", "²", "squared" as "**"
    if len(_POWER.findall(text)) != len(_SHORT_EXPONENT.findall(text)) or _RAISED_BRACKET.search(
        text
    ):
        return "a power must be a number of at most 3 digits, not raised again"
    return None


def _why(exc: BaseException) -> str:
    message = str(exc).strip()
    if len(message) > 120:
        message = message[:119] + "…"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _shown(unit: str) -> str:
    """A unit string as a dead letter shows it: quoted, escaped, at most 40 characters."""
    return repr(unit if len(unit) <= 40 else unit[:39] + "…")


def _parse(unit: str, registry: pint.UnitRegistry[float]) -> pint.Unit | UnitRefusal:
    screened = _screen(unit, registry)
    if screened is not None:
        return UnitRefusal(UnitProblem.UNKNOWN, f"unit {_shown(unit)} cannot be parsed: {screened}")
    try:
        return registry.Unit(unit)
    except _PARSE_ERRORS as exc:
        return UnitRefusal(UnitProblem.UNKNOWN, f"unknown unit {_shown(unit)} ({_why(exc)})")
    finally:
        _bound_pint_memo(registry)


@lru_cache(maxsize=4096)
def find_conversion(from_unit: str, to_unit: str) -> LinearConversion | UnitRefusal:
    """The linear map from ``from_unit`` to ``to_unit``, or why there is none (never raises
    for any text in ``from_unit``; an error pint raises that is not listed here propagates)."""
    if from_unit == to_unit:
        return IDENTITY
    registry = unit_registry()
    source = _parse(from_unit, registry)
    if isinstance(source, UnitRefusal):
        return source
    target = _parse(to_unit, registry)
    if isinstance(target, UnitRefusal):
        return UnitRefusal(UnitProblem.NOT_CONVERTIBLE, f"registered unit: {target.detail}")

    def refused(why: str) -> UnitRefusal:
        return UnitRefusal(
            UnitProblem.NOT_CONVERTIBLE,
            f"unit {_shown(from_unit)} cannot be converted to {to_unit!r}: {why}",
        )

    try:
        if source.dimensionality != target.dimensionality:
            return refused(f"{source.dimensionality} is not {target.dimensionality}")
        # numpy warns (log of zero) on logarithmic units; the checks below refuse them anyway.
        with np.errstate(all="ignore"):
            zero, one, two, far = (
                float(registry.Quantity(x, source).to(target).magnitude)
                for x in (0.0, 1.0, 2.0, 1e3)
            )
    except _CONVERSION_ERRORS as exc:
        return refused(_why(exc))
    finally:
        _bound_pint_memo(registry)
    # The scale from a far point: with an offset (mK to degC: -273.15) the difference of two
    # near points loses digits to cancellation.
    offset = zero
    scale = (far - zero) / 1e3 if math.isfinite(far) else one - zero
    if not (math.isfinite(scale) and math.isfinite(offset) and scale != 0.0):
        return refused(f"no finite linear map (scale {scale!r}, offset {offset!r})")
    for x, converted in ((1.0, one), (2.0, two)):
        expected = scale * x + offset
        if not math.isclose(
            converted, expected, rel_tol=1e-9, abs_tol=1e-9 * (abs(offset) + abs(scale) * x)
        ):
            return refused("the conversion is not linear (a logarithmic unit)")
    return LinearConversion(scale=scale, offset=offset)


def linear_conversion(from_unit: str, to_unit: str) -> LinearConversion:
    """The linear map from ``from_unit`` to ``to_unit``; raises :class:`UnitError` if impossible."""
    found = find_conversion(from_unit, to_unit)
    if isinstance(found, UnitRefusal):
        raise UnitError(found.detail)
    return found


def check_unit(unit: str) -> None:
    """Raise :class:`UnitError` unless pint knows ``unit``."""
    parsed = _parse(unit, unit_registry())
    if isinstance(parsed, UnitRefusal):
        raise UnitError(parsed.detail)
