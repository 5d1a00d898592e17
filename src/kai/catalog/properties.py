"""Typed property definitions (a category's schema) and material values checked against them.

Values are stored canonically: numbers as floats in the definition's unit, colours as "#RRGGBB",
enum options in the definition's spelling. A stored value is itself valid input, so values can
be checked again when a material moves to another category.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Literal, NamedTuple, TypeGuard

from pydantic import Field, StringConstraints, model_validator

from kai.catalog.units import UNITS, convert, preferred, same_dimension, units_of
from kai.catalog.units import UnitSystem as UnitSystem  # part of this module's API too
from kai.kit.schemas import RequestModel

PropertyType = Literal[
    "number", "integer", "text", "enum", "multi_enum", "boolean", "colour", "dimensions"
]
ErrorType = Literal[
    "missing",
    "wrong_type",
    "out_of_range",
    "unknown_option",
    "unknown_property",
    "unknown_unit",
    "wrong_unit",
]
KEY_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
MAX_TEXT_LENGTH = 2000

_UNIT_TYPES = frozenset({"number", "dimensions"})
_RANGE_TYPES = frozenset({"number", "integer", "dimensions"})
_OPTION_TYPES = frozenset({"enum", "multi_enum"})
_SIDES = ("length", "width", "thickness")
_COLOUR = re.compile(r"#([0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})")
# Enough of a long option list to tell the client what is meant, not a wall of text.
_OPTIONS_QUOTED = 10

Option = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class PropertyDefinition(RequestModel):
    """One property of a category's schema: its key, type, canonical unit and limits."""

    key: Annotated[str, Field(pattern=KEY_PATTERN, description="Key in a material's values.")]
    label: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    type: PropertyType
    unit: str | None = Field(
        default=None,
        description="Canonical unit of a number or dimensions property; values are stored in it.",
    )
    minimum: Annotated[float, Field(allow_inf_nan=False)] | None = Field(
        default=None, description="Least value (each side of dimensions), in the canonical unit."
    )
    maximum: Annotated[float, Field(allow_inf_nan=False)] | None = Field(
        default=None, description="Greatest value (each side of dimensions), in the canonical unit."
    )
    options: Annotated[list[Option], Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="The choices of an enum or multi_enum property."
    )
    required: bool = False
    description: Annotated[str, StringConstraints(max_length=1000)] = ""

    @model_validator(mode="after")
    def check_consistency(self) -> PropertyDefinition:
        problems = _definition_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _definition_problems(definition: PropertyDefinition) -> list[str]:
    problems = []
    kind, unit = definition.type, definition.unit
    if unit is not None and kind not in _UNIT_TYPES:
        problems.append(f"{kind} properties have no unit (only number and dimensions do)")
    elif unit is not None and unit not in UNITS:
        problems.append(f"unknown unit {unit!r}")
    elif kind == "dimensions" and (unit is None or UNITS[unit].dimension != "length"):
        lengths = _listed(units_of("length"), conjunction="or")
        problems.append(f"dimensions need a unit of length ({lengths})")
    if kind not in _RANGE_TYPES and (
        definition.minimum is not None or definition.maximum is not None
    ):
        problems.append(f"{kind} properties have no minimum or maximum")
    if (
        definition.minimum is not None
        and definition.maximum is not None
        and definition.minimum > definition.maximum
    ):
        problems.append(
            f"minimum ({_number_text(definition.minimum)}) is greater than "
            f"maximum ({_number_text(definition.maximum)})"
        )
    if kind in _OPTION_TYPES:
        if definition.options is None:
            problems.append(f"{kind} properties need options")
        else:
            # Values match options case-insensitively, so "Oak" and "oak" could not be told apart.
            seen: set[str] = set()
            repeated = []
            for option in definition.options:
                if option.casefold() in seen:
                    repeated.append(option)
                seen.add(option.casefold())
            if repeated:
                problems.append(f"options must be unique: {_listed(repeated)} repeated")
    elif definition.options is not None:
        problems.append(f"{kind} properties have no options (only enum and multi_enum do)")
    return problems


class PropertyError(NamedTuple):
    """Why one property value was refused; `type` is a short machine-readable code."""

    key: str
    message: str
    type: ErrorType


class _Invalid(Exception):
    """A value that does not fit its definition, with every reason found."""

    def __init__(self, *problems: tuple[ErrorType, str]) -> None:
        super().__init__(problems)
        self.problems = problems


def validate_properties(
    definitions: Sequence[PropertyDefinition],
    values: Mapping[str, object],
    *,
    partial: bool = False,
) -> tuple[dict[str, object], list[PropertyError]]:
    """Canonical stored values and every error (all of them, not just the first).

    Unknown keys are errors. Missing required keys are errors unless partial=True (a PATCH that
    changes some properties). A value None means "remove the property" (allowed unless
    required); removed keys are absent from the canonical values.
    """
    canonical: dict[str, object] = {}
    errors: list[PropertyError] = []
    known = {definition.key: definition for definition in definitions}
    for definition in known.values():
        key = definition.key
        if key not in values:
            if definition.required and not partial:
                errors.append(PropertyError(key, "is required", "missing"))
            continue
        value = values[key]
        if value is None:
            if definition.required:
                errors.append(PropertyError(key, "is required and cannot be removed", "missing"))
            continue
        try:
            canonical[key] = _PARSERS[definition.type](definition, value)
        except _Invalid as invalid:
            errors.extend(PropertyError(key, message, kind) for kind, message in invalid.problems)
    errors.extend(
        PropertyError(key, "is not a property of this category", "unknown_property")
        for key in values
        if key not in known
    )
    return canonical, errors


def present_properties(
    definitions: Sequence[PropertyDefinition], stored: Mapping[str, object], system: UnitSystem
) -> dict[str, object]:
    """Stored values as a reader of `system` sees them (converted, rounded sensibly).

    Values the schema no longer defines are left out; one that no longer fits its definition
    is shown as stored rather than hidden.
    """
    shown: dict[str, object] = {}
    for definition in definitions:
        if definition.key in stored:
            value = stored[definition.key]
            try:
                shown[definition.key] = _present(definition, value, system)
            except _Invalid:
                shown[definition.key] = value
    return shown


def searchable_text(definitions: Sequence[PropertyDefinition], stored: Mapping[str, object]) -> str:
    """Words to find a material by: texts, options, true booleans' labels, numbers with units."""
    words: list[str] = []
    for definition in definitions:
        value = stored.get(definition.key)
        if value is None:
            continue
        kind = definition.type
        if kind in ("text", "enum") and isinstance(value, str):
            words.append(value)
        elif kind == "multi_enum" and isinstance(value, list):
            words.extend(option for option in value if isinstance(option, str))
        elif kind == "boolean" and value is True:
            words.append(definition.label)
        elif kind in ("number", "integer") and _is_number(value):
            words.append(_with_unit(_number_text(value), definition.unit))
        elif kind == "dimensions" and isinstance(value, Mapping):
            sides = [size for size in (value.get(side) for side in _SIDES) if _is_number(size)]
            if sides:
                text = " x ".join(_number_text(side) for side in sides)
                words.append(_with_unit(text, definition.unit))
    return " ".join(words)


def merge_definitions(chain: Sequence[Sequence[PropertyDefinition]]) -> list[PropertyDefinition]:
    """The effective schema of the last category of `chain` (root first), ancestors' keys first.

    A descendant may redefine an inherited key with the same type and unit (its definition
    wins), and may only narrow it: a range within the inherited one, options among the
    inherited ones, required where it was. What a category promises of its materials then
    holds of every material under it, and the values of a whole subtree share one canonical
    form so that they can be searched together.
    """
    merged: dict[str, PropertyDefinition] = {}
    for level in chain:
        own: set[str] = set()
        for definition in level:
            key = definition.key
            if key in own:
                raise ValueError(f"property {key!r} is defined twice")
            own.add(key)
            inherited = merged.get(key)
            if inherited is not None and inherited.type != definition.type:
                raise ValueError(
                    f"property {key!r} is of type {inherited.type} in a parent category; "
                    f"a subcategory cannot change it to {definition.type}"
                )
            if inherited is not None and inherited.unit != definition.unit:
                raise ValueError(
                    f"property {key!r} is kept in {inherited.unit or 'no unit'} in a parent "
                    f"category; a subcategory cannot keep it in {definition.unit or 'no unit'}"
                )
            if inherited is not None:
                loosened = _loosened(inherited, definition)
                if loosened:
                    raise ValueError(
                        f"property {key!r}: a subcategory may only narrow what it inherits, "
                        f"and {'; '.join(loosened)}"
                    )
            # Replacing a key keeps its place, so inherited properties stay first.
            merged[key] = definition
    return list(merged.values())


def _loosened(inherited: PropertyDefinition, definition: PropertyDefinition) -> list[str]:
    """How `definition` lets through what `inherited` refuses (nothing: an empty list)."""
    unit = inherited.unit
    found = []
    low, high = inherited.minimum, inherited.maximum
    if low is not None and (definition.minimum is None or definition.minimum < low):
        given = "no minimum" if definition.minimum is None else _number_text(definition.minimum)
        limit = _with_unit(_number_text(low), unit)
        found.append(f"its minimum is {limit} in a parent category ({given} here)")
    if high is not None and (definition.maximum is None or definition.maximum > high):
        given = "no maximum" if definition.maximum is None else _number_text(definition.maximum)
        limit = _with_unit(_number_text(high), unit)
        found.append(f"its maximum is {limit} in a parent category ({given} here)")
    if inherited.options is not None and definition.options is not None:
        # Spelt as inherited, so that the whole subtree's values count as one in facets.
        offered = set(inherited.options)
        extra = [option for option in definition.options if option not in offered]
        if extra:
            verb = "is" if len(extra) == 1 else "are"
            found.append(
                f"{_listed(extra)} {verb} not among the parent category's options "
                f"({_choices(inherited)})"
            )
    if inherited.required and not definition.required:
        found.append("it is required in a parent category")
    return found


# --- parsing input into canonical values ----------------------------------------------------


def _is_number(value: object) -> TypeGuard[int | float]:
    # bool is an int to Python, but True is not a thickness.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_float(value: object) -> float:
    """A JSON number as a finite float; _Invalid otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(("wrong_type", "must be a number"))
    try:
        number = float(value)
    except OverflowError:
        raise _Invalid(("out_of_range", "is too large")) from None
    if not math.isfinite(number):
        raise _Invalid(("wrong_type", "must be a finite number"))
    return number


def _significant(value: float) -> float:
    """Rounded to 6 significant digits, so that converted values lose their float artefacts."""
    return float(f"{value:.6g}")


def _to_canonical(value: float, unit: str, canonical: str) -> float:
    if unit == canonical:
        return value
    converted = convert(value, unit, canonical)
    if not math.isfinite(converted):
        raise _Invalid(("out_of_range", "is too large"))
    return _significant(converted)


def _check_unit(unit: object, definition: PropertyDefinition) -> str:
    """The input's unit, checked against the definition's canonical unit."""
    canonical = definition.unit
    if canonical is None:
        raise _Invalid(("wrong_unit", "takes a plain number, without a unit"))
    if not isinstance(unit, str):
        raise _Invalid(("wrong_type", "unit must be a string"))
    if unit not in UNITS:
        raise _Invalid(("unknown_unit", f"unknown unit {unit!r}"))
    if not same_dimension(unit, canonical):
        dimension = UNITS[canonical].dimension.replace("_", " ")
        compatible = _listed(units_of(UNITS[canonical].dimension), conjunction="or")
        raise _Invalid(("wrong_unit", f"needs a unit of {dimension} ({compatible})"))
    return unit


def _check_range(value: float, definition: PropertyDefinition) -> None:
    low, high = definition.minimum, definition.maximum
    if low is not None and high is not None and not low <= value <= high:
        limits = f"between {_number_text(low)} and {_number_text(high)}"
    elif low is not None and value < low:
        limits = f"at least {_number_text(low)}"
    elif high is not None and value > high:
        limits = f"at most {_number_text(high)}"
    else:
        return
    # Quoted in the canonical unit like the limits: after a conversion it differs from the input.
    given = _with_unit(_number_text(value), definition.unit)
    message = f"must be {_with_unit(limits, definition.unit)} (it is {given})"
    raise _Invalid(("out_of_range", message))


def _parse_number(definition: PropertyDefinition, value: object) -> float:
    if isinstance(value, Mapping):
        extra = sorted(str(key) for key in value if key not in ("value", "unit"))
        if extra or "value" not in value:
            raise _Invalid(("wrong_type", 'must be a number or {"value": number, "unit": unit}'))
        number = _as_float(value["value"])
        unit = value.get("unit")
        if unit is not None:
            number = _to_canonical(number, _check_unit(unit, definition), str(definition.unit))
    elif _is_number(value):
        number = _as_float(value)
    else:
        raise _Invalid(("wrong_type", 'must be a number or {"value": number, "unit": unit}'))
    _check_range(number, definition)
    return number


def _parse_integer(definition: PropertyDefinition, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        whole = value
    elif isinstance(value, float) and value.is_integer():
        whole = int(value)
    else:
        raise _Invalid(("wrong_type", "must be a whole number"))
    _check_range(whole, definition)
    return whole


def _parse_text(definition: PropertyDefinition, value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid(("wrong_type", "must be a string"))
    text = value.strip()
    if not text:
        raise _Invalid(("out_of_range", "must not be empty"))
    if len(text) > MAX_TEXT_LENGTH:
        raise _Invalid(("out_of_range", f"must be at most {MAX_TEXT_LENGTH} characters"))
    return text


def _option(definition: PropertyDefinition, value: str) -> str | None:
    """The option `value` names, in the definition's spelling; None when it names none."""
    options = definition.options or []
    if value in options:
        return value
    wanted = value.strip().casefold()
    return next((option for option in options if option.casefold() == wanted), None)


def _choices(definition: PropertyDefinition) -> str:
    options = definition.options or []
    quoted = _listed(options[:_OPTIONS_QUOTED], conjunction="or")
    return quoted if len(options) <= _OPTIONS_QUOTED else f"{quoted}, …"


def _parse_enum(definition: PropertyDefinition, value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid(("wrong_type", "must be a string, one of the options"))
    option = _option(definition, value)
    if option is None:
        raise _Invalid(("unknown_option", f"must be one of {_choices(definition)}"))
    return option


def _parse_multi_enum(definition: PropertyDefinition, value: object) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise _Invalid(("wrong_type", "must be a list of options"))
    chosen: set[str] = set()
    unknown: list[str] = []
    for item in value:
        option = _option(definition, item)
        if option is None:
            unknown.append(item)
        else:
            chosen.add(option)
    if unknown:
        verb = "is not an option" if len(unknown) == 1 else "are not options"
        message = f"{_listed(unknown)} {verb}; choose from {_choices(definition)}"
        raise _Invalid(("unknown_option", message))
    if definition.required and not chosen:
        raise _Invalid(("missing", "is required: choose at least one option"))
    return [option for option in definition.options or [] if option in chosen]


def _parse_boolean(definition: PropertyDefinition, value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(("wrong_type", "must be true or false"))
    return value


def _parse_colour(definition: PropertyDefinition, value: object) -> str:
    if not isinstance(value, str) or not _COLOUR.fullmatch(value.strip()):
        raise _Invalid(("wrong_type", 'must be a colour as "#RRGGBB" or "#RGB"'))
    digits = value.strip()[1:].upper()
    if len(digits) == 3:
        digits = "".join(digit * 2 for digit in digits)
    return f"#{digits}"


def _parse_dimensions(definition: PropertyDefinition, value: object) -> dict[str, float]:
    shape = 'must be {"length": number, "width": number, "thickness": number, "unit": unit}'
    if not isinstance(value, Mapping):
        raise _Invalid(("wrong_type", shape))
    canonical = str(definition.unit)
    problems: list[tuple[ErrorType, str]] = []
    extra = [str(key) for key in value if key not in (*_SIDES, "unit")]
    if extra:
        problems.append(("wrong_type", f"{shape}; {_listed(extra)} not expected"))
    unit = canonical
    if value.get("unit") is not None:
        try:
            unit = _check_unit(value["unit"], definition)
        except _Invalid as invalid:
            problems.extend(invalid.problems)
    sides: dict[str, float] = {}
    for side in _SIDES:
        if value.get(side) is None:
            if side != "thickness":
                problems.append(("missing", f"{side} is required"))
            continue
        try:
            size = _to_canonical(_as_float(value[side]), unit, canonical)
            if size <= 0:
                raise _Invalid(("out_of_range", "must be greater than 0"))
            _check_range(size, definition)
        except _Invalid as invalid:
            problems.extend((kind, f"{side} {message}") for kind, message in invalid.problems)
        else:
            sides[side] = size
    if problems:
        raise _Invalid(*problems)
    return sides


_PARSERS: Mapping[PropertyType, Callable[[PropertyDefinition, object], object]] = {
    "number": _parse_number,
    "integer": _parse_integer,
    "text": _parse_text,
    "enum": _parse_enum,
    "multi_enum": _parse_multi_enum,
    "boolean": _parse_boolean,
    "colour": _parse_colour,
    "dimensions": _parse_dimensions,
}


# --- presenting canonical values ------------------------------------------------------------


def _shown(value: float, canonical: str, target: str) -> float:
    """`value` in the reader's unit: as stored when unchanged, else to at most 3 decimals."""
    if target == canonical:
        return value
    converted = convert(value, canonical, target)
    if not math.isfinite(converted):
        raise _Invalid(("out_of_range", "is too large"))
    rounded = round(converted, 3)
    # A tiny value (a 0.01 mm coating) would otherwise read as 0 in.
    return rounded if rounded or not converted else float(f"{converted:.3g}")


def _present(definition: PropertyDefinition, value: object, system: UnitSystem) -> object:
    canonical = definition.unit
    if definition.type == "number" and _is_number(value) and canonical is not None:
        target = preferred(canonical, system)
        return {"value": _shown(_as_float(value), canonical, target), "unit": target}
    if definition.type == "dimensions" and isinstance(value, Mapping) and canonical is not None:
        target = preferred(canonical, system)
        sides: dict[str, object] = {
            side: _shown(_as_float(value[side]), canonical, target)
            for side in _SIDES
            if _is_number(value.get(side))
        }
        return {**sides, "unit": target}
    return value


# --- wording ---------------------------------------------------------------------------------


def _number_text(value: float) -> str:
    """600.0 as "600", 12.7 as "12.7": how a person writes it."""
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _with_unit(text: str, unit: str | None) -> str:
    return f"{text} {unit}" if unit else text


def _listed(items: Sequence[str], conjunction: str = "and") -> str:
    if len(items) <= 1:
        return ", ".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"
