"""Physical units of material catalogs: conversions between them and each reader's preference."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType
from typing import Literal

UnitSystem = Literal["metric", "imperial"]


class UnitError(ValueError):
    """An unknown unit, or a conversion between units of different dimensions."""


@dataclass(frozen=True)
class Unit:
    """A unit: `base = value * factor + offset`, in the base unit of its dimension."""

    symbol: str
    dimension: str
    factor: float
    offset: float = 0.0


# Exact definitions (the inch, pound and US gallon are defined exactly), kept as fractions so
# that 1 in is exactly 25.4 mm and not 25.399999999999995.
_INCH = Fraction("0.0254")
_FOOT = 12 * _INCH
_YARD = Fraction("0.9144")
_POUND = Fraction("0.45359237")
_OUNCE = Fraction("0.028349523125")
_GALLON = Fraction("0.003785411784")
_CELSIUS_ZERO = Fraction("273.15")

# symbol: (dimension, factor, offset); base units: m, m2, kg, kg/m2, kg/m3, Pa, K, m3.
_DEFINITIONS: dict[str, tuple[str, Fraction, Fraction]] = {
    "mm": ("length", Fraction(1, 1000), Fraction(0)),
    "cm": ("length", Fraction(1, 100), Fraction(0)),
    "m": ("length", Fraction(1), Fraction(0)),
    "in": ("length", _INCH, Fraction(0)),
    "ft": ("length", _FOOT, Fraction(0)),
    "mm2": ("area", Fraction(1, 1000) ** 2, Fraction(0)),
    "cm2": ("area", Fraction(1, 100) ** 2, Fraction(0)),
    "m2": ("area", Fraction(1), Fraction(0)),
    "in2": ("area", _INCH**2, Fraction(0)),
    "ft2": ("area", _FOOT**2, Fraction(0)),
    "g": ("mass", Fraction(1, 1000), Fraction(0)),
    "kg": ("mass", Fraction(1), Fraction(0)),
    "t": ("mass", Fraction(1000), Fraction(0)),
    "oz": ("mass", _OUNCE, Fraction(0)),
    "lb": ("mass", _POUND, Fraction(0)),
    "kg/m2": ("mass_per_area", Fraction(1), Fraction(0)),
    "g/m2": ("mass_per_area", Fraction(1, 1000), Fraction(0)),
    "lb/ft2": ("mass_per_area", _POUND / _FOOT**2, Fraction(0)),
    "oz/yd2": ("mass_per_area", _OUNCE / _YARD**2, Fraction(0)),
    "kg/m3": ("density", Fraction(1), Fraction(0)),
    "g/cm3": ("density", Fraction(1000), Fraction(0)),
    "lb/ft3": ("density", _POUND / _FOOT**3, Fraction(0)),
    "MPa": ("pressure", Fraction(10**6), Fraction(0)),
    "N/mm2": ("pressure", Fraction(10**6), Fraction(0)),
    "kPa": ("pressure", Fraction(1000), Fraction(0)),
    "psi": ("pressure", Fraction("6894.757293168"), Fraction(0)),
    "K": ("temperature", Fraction(1), Fraction(0)),
    "degC": ("temperature", Fraction(1), _CELSIUS_ZERO),
    "degF": ("temperature", Fraction(5, 9), _CELSIUS_ZERO - Fraction(5, 9) * 32),
    "ml": ("volume", Fraction(1, 10**6), Fraction(0)),
    "l": ("volume", Fraction(1, 1000), Fraction(0)),
    "m3": ("volume", Fraction(1), Fraction(0)),
    "fl_oz": ("volume", _GALLON / 128, Fraction(0)),
    "gal": ("volume", _GALLON, Fraction(0)),
    "%": ("percent", Fraction(1), Fraction(0)),
    "W/mK": ("thermal_conductivity", Fraction(1), Fraction(0)),
}

UNITS: Mapping[str, Unit] = MappingProxyType(
    {
        symbol: Unit(symbol, dimension, float(factor), float(offset))
        for symbol, (dimension, factor, offset) in _DEFINITIONS.items()
    }
)

# Units not listed (imperial ones, %, W/mK) are what an imperial reader sees anyway. Grammage
# (g/m2: membranes, fabrics, wallpaper) goes to oz/yd2 as those trades quote it; lb/ft2 would
# show a 300 g/m2 fleece as 0.061.
_IMPERIAL: Mapping[str, str] = MappingProxyType(
    {
        "mm": "in",
        "cm": "in",
        "m": "ft",
        "mm2": "in2",
        "cm2": "in2",
        "m2": "ft2",
        "g": "oz",
        "kg": "lb",
        "t": "lb",
        "kg/m2": "lb/ft2",
        "g/m2": "oz/yd2",
        "kg/m3": "lb/ft3",
        "g/cm3": "lb/ft3",
        "MPa": "psi",
        "N/mm2": "psi",
        "kPa": "psi",
        "degC": "degF",
        "K": "degF",
        "ml": "fl_oz",
        "l": "gal",
        "m3": "gal",
    }
)


def get_unit(symbol: str) -> Unit:
    """The unit with this symbol; UnitError when there is none."""
    try:
        return UNITS[symbol]
    except KeyError:
        raise UnitError(f"unknown unit {symbol!r}") from None


def same_dimension(a: str, b: str) -> bool:
    """Whether values in `a` can be converted to `b` (False when either is unknown)."""
    return a in UNITS and b in UNITS and UNITS[a].dimension == UNITS[b].dimension


def units_of(dimension: str) -> list[str]:
    """Symbols of the units of a dimension, in registry order."""
    return [symbol for symbol, known in UNITS.items() if known.dimension == dimension]


def convert(value: float, source: str, target: str) -> float:
    """`value` in `source` expressed in `target`; UnitError for unknown or incompatible units."""
    source_unit, target_unit = get_unit(source), get_unit(target)
    if source_unit.dimension != target_unit.dimension:
        raise UnitError(
            f"cannot convert {source} ({source_unit.dimension}) "
            f"to {target} ({target_unit.dimension})"
        )
    if source == target:
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return (value * source_unit.factor + source_unit.offset - target_unit.offset) / (
            target_unit.factor
        )
    _, source_factor, source_offset = _DEFINITIONS[source]
    _, target_factor, target_offset = _DEFINITIONS[target]
    # Exact arithmetic on the decimal the value was written as (25.4, not the binary float
    # just under it), then one rounding: 25.4 mm is 1 in, 100 degC is 212 degF.
    exact = Fraction(value) if isinstance(value, int) else Fraction(repr(float(value)))
    result = (exact * source_factor + source_offset - target_offset) / target_factor
    try:
        return float(result)
    except OverflowError:
        return math.inf if result > 0 else -math.inf


def preferred(unit: str, system: UnitSystem) -> str:
    """The unit a reader of `system` sees a value stored in `unit` in."""
    if unit not in UNITS:
        raise UnitError(f"unknown unit {unit!r}")
    if system == "metric":
        return unit
    return _IMPERIAL.get(unit, unit)
