"""Unit conversion with pint, reduced to a cached linear map for the hot path.

Every value carries a unit and is converted at ingest to the instrument's registered unit
(METROLOGY.md, "Units"). pint resolves the conversion once per (from, to) pair; afterwards a
reading costs one multiply-add. Offset units (degC, degF) are linear maps too.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import pint

from metrology.errors import UnitError


@dataclass(frozen=True, slots=True)
class LinearConversion:
    """``to = scale * from + offset``."""

    scale: float
    offset: float

    def __call__(self, value: float) -> float:
        return self.scale * value + self.offset


IDENTITY = LinearConversion(1.0, 0.0)


@lru_cache(maxsize=1)
def unit_registry() -> pint.UnitRegistry[float]:
    """The one pint registry (building it takes a fraction of a second, so it is built once)."""
    registry: pint.UnitRegistry[float] = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    # Common spellings on instrument gateways that pint does not know by default.
    registry.define("percent_RH = percent = %RH")
    return registry


@lru_cache(maxsize=4096)
def linear_conversion(from_unit: str, to_unit: str) -> LinearConversion:
    """The linear map from ``from_unit`` to ``to_unit``; raises :class:`UnitError` if impossible."""
    if from_unit == to_unit:
        return IDENTITY
    registry = unit_registry()
    try:
        source = registry.Unit(from_unit)
        target = registry.Unit(to_unit)
    except (pint.errors.UndefinedUnitError, AttributeError, ValueError, TypeError) as exc:
        raise UnitError(f"unknown unit {from_unit!r}") from exc
    if source.dimensionality != target.dimensionality:
        raise UnitError(
            f"unit {from_unit!r} ({source.dimensionality}) cannot be converted to "
            f"{to_unit!r} ({target.dimensionality})"
        )
    zero = registry.Quantity(0.0, source).to(target).magnitude
    one = registry.Quantity(1.0, source).to(target).magnitude
    return LinearConversion(scale=float(one - zero), offset=float(zero))


def check_unit(unit: str) -> None:
    """Raise :class:`UnitError` unless pint knows ``unit``."""
    try:
        unit_registry().Unit(unit)
    except (pint.errors.UndefinedUnitError, AttributeError, ValueError, TypeError) as exc:
        raise UnitError(f"unknown unit {unit!r}") from exc
