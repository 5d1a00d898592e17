"""Units and typed property schemas: conversions, validation of values, presentation, merging."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kai.catalog.properties import (
    PropertyDefinition,
    PropertyError,
    merge_definitions,
    present_properties,
    searchable_text,
    validate_properties,
)
from kai.catalog.units import UNITS, UnitError, convert, preferred, same_dimension


def definition(key: str, type: str, **fields: Any) -> PropertyDefinition:
    return PropertyDefinition.model_validate(
        {"key": key, "label": key.replace("_", " ").capitalize(), "type": type, **fields}
    )


THICKNESS = definition("thickness", "number", unit="mm", minimum=3, maximum=30, required=True)
FINISH = definition("finish", "enum", options=["polished", "honed", "Brushed"])
USES = definition("uses", "multi_enum", options=["floor", "wall", "outdoor"])
FROST = definition("frost_resistant", "boolean")
COLOUR = definition("colour", "colour")
SIZE = definition("size", "dimensions", unit="mm", minimum=1, maximum=3000)
PIECES = definition("pieces_per_box", "integer", minimum=1)
ORIGIN = definition("origin", "text")
ABSORPTION = definition("water_absorption", "number", unit="%")
SLIP = definition("slip_rating", "number")
SCHEMA = [THICKNESS, FINISH, USES, FROST, COLOUR, SIZE, PIECES, ORIGIN, ABSORPTION, SLIP]


def valid(values: dict[str, Any], *, partial: bool = False) -> dict[str, object]:
    canonical, errors = validate_properties(SCHEMA, values, partial=partial)
    assert errors == []
    return canonical


def errors_of(values: dict[str, Any], *, partial: bool = False) -> dict[str, list[str]]:
    """Error types by key."""
    _, errors = validate_properties(SCHEMA, values, partial=partial)
    found: dict[str, list[str]] = {}
    for error in errors:
        found.setdefault(error.key, []).append(error.type)
    return found


# --- units -----------------------------------------------------------------------------------


def test_conversions_use_the_exact_definitions() -> None:
    assert convert(1, "in", "mm") == 25.4
    assert convert(25.4, "mm", "in") == 1
    assert convert(1, "ft", "m") == pytest.approx(0.3048)
    assert convert(1, "lb", "kg") == 0.45359237
    assert convert(1, "oz", "g") == pytest.approx(28.349523125)
    assert convert(1, "gal", "l") == pytest.approx(3.785411784)
    assert convert(1, "psi", "kPa") == pytest.approx(6.894757293168)
    assert convert(1, "MPa", "N/mm2") == 1
    assert convert(1, "kg/m2", "lb/ft2") == pytest.approx(0.204816, rel=1e-6)
    assert convert(1, "g/cm3", "kg/m3") == 1000
    assert convert(1, "m2", "ft2") == pytest.approx(10.7639104)
    assert convert(128, "fl_oz", "gal") == pytest.approx(1)


def test_temperatures_convert_with_their_offsets() -> None:
    assert convert(100, "degC", "degF") == pytest.approx(212)
    assert convert(-40, "degF", "degC") == pytest.approx(-40)
    assert convert(0, "K", "degC") == pytest.approx(-273.15)
    assert convert(32, "degF", "K") == pytest.approx(273.15)


def test_unknown_units_and_other_dimensions_are_refused() -> None:
    with pytest.raises(UnitError, match="furlong"):
        convert(1, "furlong", "m")
    with pytest.raises(UnitError, match="length"):
        convert(1, "mm", "kg")
    assert issubclass(UnitError, ValueError)
    assert same_dimension("MPa", "psi")
    assert not same_dimension("mm", "m2")
    assert not same_dimension("mm", "furlong")


@pytest.mark.parametrize(
    ("unit", "imperial"),
    [
        ("mm", "in"), ("cm", "in"), ("m", "ft"), ("mm2", "in2"), ("cm2", "in2"), ("m2", "ft2"),
        ("g", "oz"), ("kg", "lb"), ("t", "lb"), ("kg/m2", "lb/ft2"), ("g/m2", "oz/yd2"),
        ("kg/m3", "lb/ft3"), ("g/cm3", "lb/ft3"), ("MPa", "psi"), ("N/mm2", "psi"),
        ("kPa", "psi"), ("degC", "degF"), ("K", "degF"), ("ml", "fl_oz"), ("l", "gal"),
        ("m3", "gal"), ("in", "in"), ("lb", "lb"), ("%", "%"), ("W/mK", "W/mK"),
    ],
)  # fmt: skip
def test_each_unit_has_the_unit_an_imperial_reader_prefers(unit: str, imperial: str) -> None:
    assert preferred(unit, "imperial") == imperial
    assert preferred(unit, "metric") == unit
    assert same_dimension(unit, imperial)


def test_every_unit_converts_to_its_base_and_back() -> None:
    for symbol, known in UNITS.items():
        assert known.symbol == symbol
        base = next(other for other in UNITS.values() if other.dimension == known.dimension)
        assert convert(convert(7.5, symbol, base.symbol), base.symbol, symbol) == pytest.approx(7.5)
    with pytest.raises(UnitError):
        preferred("furlong", "imperial")


# --- every type, valid and invalid ----------------------------------------------------------


def test_numbers_are_taken_in_the_canonical_unit_or_converted_from_another() -> None:
    assert valid({"thickness": 12})["thickness"] == 12.0
    assert isinstance(valid({"thickness": 12})["thickness"], float)
    assert valid({"thickness": {"value": 1, "unit": "in"}})["thickness"] == 25.4
    assert valid({"thickness": {"value": 2, "unit": "cm"}})["thickness"] == 20
    assert valid({"thickness": {"value": 12}})["thickness"] == 12
    # 6 significant digits: no 15.874999999999998.
    assert valid({"thickness": {"value": 0.625, "unit": "in"}})["thickness"] == 15.875
    assert valid({"thickness": 10, "water_absorption": 0.5})["water_absorption"] == 0.5
    assert valid({"thickness": 10, "slip_rating": -2.5})["slip_rating"] == -2.5


def test_a_unit_of_another_dimension_or_an_unknown_one_is_refused() -> None:
    assert errors_of({"thickness": {"value": 1, "unit": "kg"}}) == {"thickness": ["wrong_unit"]}
    assert errors_of({"thickness": {"value": 1, "unit": "furlong"}}) == {
        "thickness": ["unknown_unit"]
    }
    # A unitless number takes no unit.
    assert errors_of({"thickness": 10, "slip_rating": {"value": 1, "unit": "mm"}}) == {
        "slip_rating": ["wrong_unit"]
    }
    _, errors = validate_properties([THICKNESS], {"thickness": {"value": 1, "unit": "kg"}})
    assert "mm" in errors[0].message


@pytest.mark.parametrize(
    "value",
    [True, False, "12", [12], {"value": "12"}, {"unit": "mm"}, {"value": 1, "colour": 2},
     float("nan"), float("inf")],
)  # fmt: skip
def test_what_is_not_a_number_is_refused(value: object) -> None:
    assert errors_of({"thickness": value}) == {"thickness": ["wrong_type"]}


def test_numbers_too_large_for_a_float_are_refused() -> None:
    assert errors_of({"thickness": 10**400}) == {"thickness": ["out_of_range"]}
    assert errors_of({"thickness": {"value": 1e308, "unit": "in"}}) == {
        "thickness": ["out_of_range"]
    }
    assert errors_of({"thickness": 10, "pieces_per_box": 10**400}) == {}


def test_the_range_is_checked_in_the_canonical_unit_after_conversion() -> None:
    _, errors = validate_properties([THICKNESS], {"thickness": {"value": 2, "unit": "in"}})
    assert errors == [
        PropertyError("thickness", "must be between 3 and 30 mm (it is 50.8 mm)", "out_of_range")
    ]
    assert errors_of({"thickness": 2.9}) == {"thickness": ["out_of_range"]}
    assert valid({"thickness": {"value": 3, "unit": "cm"}})["thickness"] == 30
    at_least = definition("weight", "number", unit="kg", minimum=1)
    _, errors = validate_properties([at_least], {"weight": {"value": 1, "unit": "lb"}})
    assert errors[0].message.startswith("must be at least 1 kg")
    at_most = definition("weight", "number", unit="kg", maximum=1)
    _, errors = validate_properties([at_most], {"weight": {"value": 3, "unit": "lb"}})
    assert errors[0].message.startswith("must be at most 1 kg")


def test_integers_are_whole_numbers_but_not_booleans() -> None:
    assert valid({"thickness": 10, "pieces_per_box": 8})["pieces_per_box"] == 8
    three = valid({"thickness": 10, "pieces_per_box": 3.0})["pieces_per_box"]
    assert three == 3
    assert isinstance(three, int)
    for value in (True, 2.5, "3", [3]):
        assert errors_of({"thickness": 10, "pieces_per_box": value}) == {
            "pieces_per_box": ["wrong_type"]
        }
    assert errors_of({"thickness": 10, "pieces_per_box": 0}) == {"pieces_per_box": ["out_of_range"]}


def test_text_is_stripped_and_must_not_be_empty_or_too_long() -> None:
    assert valid({"thickness": 10, "origin": "  Carrara "})["origin"] == "Carrara"
    assert errors_of({"thickness": 10, "origin": "   "}) == {"origin": ["out_of_range"]}
    assert errors_of({"thickness": 10, "origin": "x" * 2001}) == {"origin": ["out_of_range"]}
    assert valid({"thickness": 10, "origin": "x" * 2000})["origin"] == "x" * 2000
    assert errors_of({"thickness": 10, "origin": 12}) == {"origin": ["wrong_type"]}


def test_an_enum_takes_an_option_in_any_case_and_stores_its_spelling() -> None:
    assert valid({"thickness": 10, "finish": "honed"})["finish"] == "honed"
    assert valid({"thickness": 10, "finish": "HONED"})["finish"] == "honed"
    assert valid({"thickness": 10, "finish": "brushed"})["finish"] == "Brushed"
    assert errors_of({"thickness": 10, "finish": "sandblasted"}) == {"finish": ["unknown_option"]}
    assert errors_of({"thickness": 10, "finish": ["honed"]}) == {"finish": ["wrong_type"]}
    _, errors = validate_properties([FINISH], {"finish": "sandblasted"})
    assert "polished" in errors[0].message


def test_a_multi_enum_stores_each_option_once_in_the_definitions_order() -> None:
    stored = valid({"thickness": 10, "uses": ["outdoor", "Floor", "outdoor"]})
    assert stored["uses"] == ["floor", "outdoor"]
    assert valid({"thickness": 10, "uses": []})["uses"] == []
    assert errors_of({"thickness": 10, "uses": ["floor", "roof"]}) == {"uses": ["unknown_option"]}
    assert errors_of({"thickness": 10, "uses": "floor"}) == {"uses": ["wrong_type"]}
    assert errors_of({"thickness": 10, "uses": [1]}) == {"uses": ["wrong_type"]}


def test_a_boolean_is_only_true_or_false() -> None:
    assert valid({"thickness": 10, "frost_resistant": False})["frost_resistant"] is False
    for value in ("yes", 1, 0, "true"):
        assert errors_of({"thickness": 10, "frost_resistant": value}) == {
            "frost_resistant": ["wrong_type"]
        }


def test_a_colour_is_stored_as_upper_case_six_digit_hex() -> None:
    assert valid({"thickness": 10, "colour": "#a1b2c3"})["colour"] == "#A1B2C3"
    assert valid({"thickness": 10, "colour": "#fa0"})["colour"] == "#FFAA00"
    for value in ("a1b2c3", "#12345", "#GGGGGG", "red", 0xFFFFFF):
        assert errors_of({"thickness": 10, "colour": value}) == {"colour": ["wrong_type"]}


def test_dimensions_are_converted_side_by_side() -> None:
    stored = valid({"thickness": 10, "size": {"length": 24, "width": 12, "unit": "in"}})
    assert stored["size"] == {"length": 609.6, "width": 304.8}
    stored = valid({"thickness": 10, "size": {"length": 600, "width": 300, "thickness": 10}})
    assert stored["size"] == {"length": 600, "width": 300, "thickness": 10}


def test_each_problem_of_dimensions_is_reported() -> None:
    _, errors = validate_properties(
        [SIZE], {"size": {"length": "wide", "thickness": 5000, "depth": 3}}
    )
    assert sorted(error.type for error in errors) == [
        "missing", "out_of_range", "wrong_type", "wrong_type",
    ]  # fmt: skip
    assert any(
        error.message.startswith("thickness must be between 1 and 3000 mm") for error in errors
    )
    assert errors_of({"thickness": 10, "size": {"length": 1, "width": 1, "unit": "kg"}}) == {
        "size": ["wrong_unit"]
    }
    assert errors_of({"thickness": 10, "size": {"length": 0, "width": 1}}) == {
        "size": ["out_of_range"]
    }
    assert errors_of({"thickness": 10, "size": [600, 300]}) == {"size": ["wrong_type"]}


def test_canonical_values_are_valid_input_that_stays_the_same() -> None:
    stored = valid(
        {
            "thickness": {"value": 0.5, "unit": "in"},
            "finish": "HONED",
            "uses": ["wall", "floor"],
            "frost_resistant": True,
            "colour": "#abc",
            "size": {"length": 24, "width": 12, "thickness": 0.375, "unit": "in"},
            "pieces_per_box": 4.0,
            "origin": " Carrara ",
        }
    )
    assert valid(stored) == stored


# --- required, partial, removal, unknown keys ------------------------------------------------


def test_a_required_property_is_needed_unless_the_change_is_partial() -> None:
    assert errors_of({}) == {"thickness": ["missing"]}
    assert valid({"finish": "honed"}, partial=True) == {"finish": "honed"}


def test_none_removes_a_property_unless_it_is_required() -> None:
    assert valid({"thickness": 10, "finish": None}) == {"thickness": 10}
    assert valid({"finish": None}, partial=True) == {}
    assert errors_of({"thickness": None}, partial=True) == {"thickness": ["missing"]}


def test_unknown_keys_are_errors() -> None:
    assert errors_of({"thickness": 10, "colour_code": "#FFF"}) == {
        "colour_code": ["unknown_property"]
    }
    assert errors_of({"colour_code": None}, partial=True) == {"colour_code": ["unknown_property"]}


def test_every_error_is_reported_at_once() -> None:
    canonical, errors = validate_properties(
        SCHEMA,
        {
            "finish": "sandblasted",
            "frost_resistant": "yes",
            "size": {"length": "wide"},
            "colour_code": "#FFF",
            "origin": "Carrara",
        },
    )
    assert {error.key for error in errors} == {
        "thickness", "finish", "frost_resistant", "size", "colour_code",
    }  # fmt: skip
    assert canonical == {"origin": "Carrara"}
    assert all(error.message for error in errors)


# --- presentation ----------------------------------------------------------------------------


def test_a_metric_reader_sees_values_as_stored() -> None:
    stored = valid({"thickness": 12.7, "size": {"length": 600, "width": 300}, "slip_rating": 1})
    shown = present_properties(SCHEMA, stored, "metric")
    assert shown["thickness"] == {"value": 12.7, "unit": "mm"}
    assert shown["size"] == {"length": 600, "width": 300, "unit": "mm"}
    assert shown["slip_rating"] == 1


def test_an_imperial_reader_sees_converted_rounded_values() -> None:
    stored = valid(
        {
            "thickness": {"value": 0.5, "unit": "in"},
            "size": {"length": 600, "width": 300, "thickness": 10},
            "water_absorption": 0.5,
            "pieces_per_box": 6,
            "finish": "honed",
        }
    )
    shown = present_properties(SCHEMA, stored, "imperial")
    assert shown["thickness"] == {"value": 0.5, "unit": "in"}
    assert shown["size"] == {"length": 23.622, "width": 11.811, "thickness": 0.394, "unit": "in"}
    assert shown["water_absorption"] == {"value": 0.5, "unit": "%"}
    assert shown["pieces_per_box"] == 6
    assert shown["finish"] == "honed"
    length = definition("length", "number", unit="mm")
    assert present_properties([length], {"length": 600.0}, "imperial") == {
        "length": {"value": 23.622, "unit": "in"}
    }
    # A tiny value keeps some digits rather than reading 0.
    assert present_properties([length], {"length": 0.01}, "imperial") == {
        "length": {"value": 0.000394, "unit": "in"}
    }


def test_dimensions_round_trip_through_an_imperial_reader() -> None:
    stored = valid({"thickness": 10, "size": {"length": 24, "width": 12, "unit": "in"}})
    shown = present_properties(SCHEMA, stored, "imperial")
    assert shown["size"] == {"length": 24, "width": 12, "unit": "in"}
    assert valid({"thickness": 10, "size": shown["size"]}) == stored


def test_presentation_skips_undefined_keys_and_keeps_values_that_no_longer_fit() -> None:
    shown = present_properties([THICKNESS], {"thickness": "thick", "gone": 1}, "imperial")
    assert shown == {"thickness": "thick"}


def test_temperatures_are_shown_in_fahrenheit() -> None:
    firing = definition("firing_temperature", "number", unit="degC")
    assert present_properties([firing], {"firing_temperature": 100.0}, "imperial") == {
        "firing_temperature": {"value": 212, "unit": "degF"}
    }


# --- searchable text -------------------------------------------------------------------------


def test_searchable_text_has_the_words_a_person_would_search_for() -> None:
    stored = valid(
        {
            "thickness": 12,
            "finish": "Brushed",
            "uses": ["wall", "floor"],
            "frost_resistant": True,
            "colour": "#FFFFFF",
            "size": {"length": 600, "width": 300},
            "pieces_per_box": 8,
            "origin": "Carrara",
        }
    )
    text = searchable_text(SCHEMA, stored)
    for words in ("12 mm", "Brushed", "floor", "wall", "Frost resistant", "600 x 300 mm", "8",
                  "Carrara"):  # fmt: skip
        assert words in text
    assert "#FFFFFF" not in text
    assert "Frost" not in searchable_text(SCHEMA, {"frost_resistant": False})
    assert searchable_text(SCHEMA, {}) == ""


# --- definitions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"key": "note", "type": "text", "unit": "mm"}, "no unit"),
        ({"key": "weight", "type": "number", "unit": "furlong"}, "unknown unit"),
        ({"key": "size", "type": "dimensions"}, "unit of length"),
        ({"key": "size", "type": "dimensions", "unit": "kg"}, "unit of length"),
        ({"key": "weight", "type": "number", "options": ["a"]}, "no options"),
        ({"key": "finish", "type": "enum"}, "need options"),
        ({"key": "finish", "type": "enum", "options": []}, "at least 1"),
        ({"key": "finish", "type": "enum", "options": ["Oak", "oak"]}, "unique"),
        ({"key": "finish", "type": "enum", "options": [" "]}, "at least 1"),
        ({"key": "weight", "type": "number", "minimum": 5, "maximum": 1}, "greater than"),
        ({"key": "note", "type": "text", "minimum": 1}, "no minimum"),
        ({"key": "Bad Key", "type": "text"}, "pattern"),
        ({"key": "9lives", "type": "text"}, "pattern"),
        ({"key": "x" * 64, "type": "text"}, "pattern"),
        ({"key": "note", "type": "text", "label": ""}, "at least 1"),
        ({"key": "note", "type": "text", "colour": "red"}, "Extra inputs"),
        ({"key": "note", "type": "date"}, "Input should be"),
    ],
)
def test_inconsistent_definitions_are_refused(fields: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        PropertyDefinition.model_validate({"label": "A property", **fields})


def test_a_definition_dumps_to_what_it_was_made_from() -> None:
    stored = THICKNESS.model_dump(exclude_defaults=True)
    assert PropertyDefinition.model_validate(stored) == THICKNESS
    assert "options" not in stored


# --- inheritance -----------------------------------------------------------------------------


def test_a_category_inherits_its_ancestors_definitions_first() -> None:
    origin = definition("origin", "text")
    merged = merge_definitions([[THICKNESS, FINISH], [origin], []])
    assert [item.key for item in merged] == ["thickness", "finish", "origin"]
    assert merge_definitions([]) == []


def test_a_descendant_may_narrow_an_inherited_definition_in_place() -> None:
    slab = definition("thickness", "number", unit="mm", minimum=20, maximum=30, required=True)
    honed_only = definition("finish", "enum", options=["honed"], required=True)
    merged = merge_definitions([[THICKNESS, FINISH, FROST], [honed_only, ORIGIN], [slab]])
    assert [item.key for item in merged] == ["thickness", "finish", "frost_resistant", "origin"]
    assert merged[0] is slab
    assert merged[1] is honed_only


@pytest.mark.parametrize(
    ("loosened", "said"),
    [
        (definition("thickness", "number", unit="mm", minimum=1, maximum=30, required=True),
         "its minimum is 3 mm in a parent category (1 here)"),
        (definition("thickness", "number", unit="mm", minimum=3, maximum=100, required=True),
         "its maximum is 30 mm in a parent category (100 here)"),
        (definition("thickness", "number", unit="mm", minimum=3, required=True),
         "its maximum is 30 mm in a parent category (no maximum here)"),
        (definition("thickness", "number", unit="mm", minimum=3, maximum=30),
         "it is required in a parent category"),
        (definition("finish", "enum", options=["honed", "glossy", "sparkly"]),
         "glossy and sparkly are not among the parent category's options "
         "(polished, honed or Brushed)"),
        (definition("finish", "enum", options=["brushed"]), "brushed is not among"),
    ],
)  # fmt: skip
def test_a_descendant_may_not_loosen_what_it_inherits(
    loosened: PropertyDefinition, said: str
) -> None:
    with pytest.raises(ValueError, match="may only narrow") as refused:
        merge_definitions([[THICKNESS, FINISH], [loosened]])
    assert said in str(refused.value)


def test_a_descendant_may_not_retype_or_reunit_an_inherited_property() -> None:
    retyped = definition("thickness", "text")
    with pytest.raises(ValueError, match="'thickness' is of type number"):
        merge_definitions([[THICKNESS], [retyped]])
    in_cm = definition("thickness", "number", unit="cm")
    with pytest.raises(ValueError, match="kept in mm"):
        merge_definitions([[THICKNESS], [in_cm]])
    with pytest.raises(ValueError, match="defined twice"):
        merge_definitions([[THICKNESS, THICKNESS]])
