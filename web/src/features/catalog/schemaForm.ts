// A category's property schema turned into form inputs, and back: numbers are shown in the
// reader's unit system (imperial for those who chose it) and always sent in the metric unit
// the catalog stores.
import type { Schemas } from "../../api/client";
import { convertMeasure } from "../../i18n/format";

export type PropertyDefinition = Schemas["PropertyDefinition"];
export type Units = "metric" | "imperial";
export type Sides = { length: string; width: string; thickness: string };
/** What one input holds while a person edits it. */
export type InputValue = string | boolean | string[] | Sides;
export type InputValues = Record<string, InputValue>;

export type InputKind = "number" | "integer" | "text" | "select" | "multiselect" | "checkbox" | "colour" | "dimensions";

export interface InputSpec {
  key: string;
  label: string;
  kind: InputKind;
  required: boolean;
  description: string;
  /** The unit the person types in (converted for an imperial reader); null without one. */
  unit: string | null;
  options: string[];
  /** Limits in the unit shown. */
  min: number | null;
  max: number | null;
}

const KINDS: Record<PropertyDefinition["type"], InputKind> = {
  number: "number",
  integer: "integer",
  text: "text",
  enum: "select",
  multi_enum: "multiselect",
  boolean: "checkbox",
  colour: "colour",
  dimensions: "dimensions",
};

/** How many metric units one shown unit is: 25.4 for mm shown as inches. */
function factor(unit: string, units: Units): number {
  return convertMeasure(1, unit, units).value;
}

function round(value: number, digits = 4): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** Metric value to the unit shown. */
export function toShown(value: number, unit: string | null | undefined, units: Units): number {
  return unit ? round(convertMeasure(value, unit, units).value) : value;
}

/** A value typed in the unit shown back to the metric unit. */
export function toStored(value: number, unit: string | null | undefined, units: Units): number {
  return unit ? round(value / factor(unit, units), 6) : value;
}

export function inputSpecs(schema: PropertyDefinition[], units: Units): InputSpec[] {
  return schema.map((definition) => {
    const unit = definition.unit ?? null;
    const shownUnit = unit ? convertMeasure(1, unit, units).unit : null;
    const limit = (value: number | null | undefined) => (value == null ? null : toShown(value, unit, units));
    return {
      key: definition.key,
      label: definition.label,
      kind: KINDS[definition.type],
      required: definition.required ?? false,
      description: definition.description ?? "",
      unit: shownUnit,
      options: definition.options ?? [],
      min: limit(definition.minimum),
      max: limit(definition.maximum),
    };
  });
}

/** The number in a stored value: a bare number, or `{value, unit}` as the API presents it. */
function numberOf(stored: unknown): number | null {
  if (typeof stored === "number") return stored;
  if (stored && typeof stored === "object" && typeof (stored as { value?: unknown }).value === "number") {
    return (stored as { value: number }).value;
  }
  return null;
}

function numberText(value: number | null): string {
  return value === null ? "" : String(value);
}

/** A material's stored (metric) values as the inputs show them. */
export function toInputs(schema: PropertyDefinition[], values: Record<string, unknown>, units: Units): InputValues {
  const inputs: InputValues = {};
  for (const definition of schema) {
    const stored = values[definition.key];
    switch (definition.type) {
      case "number":
      case "integer": {
        const value = numberOf(stored);
        inputs[definition.key] = numberText(value === null ? null : toShown(value, definition.unit, units));
        break;
      }
      case "boolean":
        inputs[definition.key] = stored === true;
        break;
      case "multi_enum":
        inputs[definition.key] = Array.isArray(stored) ? stored.map(String) : [];
        break;
      case "dimensions": {
        const sides = (stored ?? {}) as Record<string, unknown>;
        const side = (name: string) => {
          const value = typeof sides[name] === "number" ? (sides[name] as number) : null;
          return numberText(value === null ? null : toShown(value, definition.unit, units));
        };
        inputs[definition.key] = { length: side("length"), width: side("width"), thickness: side("thickness") };
        break;
      }
      default:
        inputs[definition.key] = typeof stored === "string" ? stored : "";
    }
  }
  return inputs;
}

function parseNumber(text: string): number | null {
  const trimmed = text.trim().replace(",", ".");
  if (!trimmed) return null;
  const value = Number(trimmed);
  return Number.isFinite(value) ? value : Number.NaN;
}

/**
 * The inputs as the API takes them, in metric units; an empty input is null (no value). A
 * number that does not parse is sent as typed so the server names the problem beside its field.
 */
export function fromInputs(schema: PropertyDefinition[], inputs: InputValues, units: Units): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const definition of schema) {
    const input = inputs[definition.key];
    if (input === undefined) continue;
    switch (definition.type) {
      case "number":
      case "integer": {
        const value = parseNumber(String(input));
        if (value === null) values[definition.key] = null;
        else if (Number.isNaN(value)) values[definition.key] = String(input);
        else {
          const stored = toStored(value, definition.unit, units);
          values[definition.key] = definition.type === "integer" ? Math.round(stored) : stored;
        }
        break;
      }
      case "boolean":
        values[definition.key] = input === true;
        break;
      case "multi_enum":
        values[definition.key] = Array.isArray(input) && input.length ? input : null;
        break;
      case "dimensions": {
        const sides = input as Sides;
        const parsed: Record<string, number | string> = {};
        for (const side of ["length", "width", "thickness"] as const) {
          const value = parseNumber(sides[side]);
          if (value === null) continue;
          parsed[side] = Number.isNaN(value) ? sides[side] : toStored(value, definition.unit, units);
        }
        values[definition.key] = Object.keys(parsed).length ? parsed : null;
        break;
      }
      default: {
        const text = String(input).trim();
        values[definition.key] = text ? text : null;
      }
    }
  }
  return values;
}

/** Only what changed between two sets of API values: a PATCH sends no more. */
export function changedValues(before: Record<string, unknown>, after: Record<string, unknown>): Record<string, unknown> {
  const changed: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(after)) {
    if (JSON.stringify(before[key] ?? null) !== JSON.stringify(value ?? null)) changed[key] = value;
  }
  return changed;
}

/** Stored values with numbers bare (the API presents `{value, unit}`), for comparing. */
export function bareValues(schema: PropertyDefinition[], values: Record<string, unknown>): Record<string, unknown> {
  return fromInputs(schema, toInputs(schema, values, "metric"), "metric");
}

/** Property values for a table cell or a facet: the number with its unit in the reader's system. */
export function describeValue(
  definition: PropertyDefinition,
  stored: unknown,
  measure: (value: number, unit: string) => string,
  number: (value: number) => string,
  yesNo: (value: boolean) => string,
): string {
  if (stored === null || stored === undefined) return "";
  if (definition.type === "boolean") return yesNo(stored === true);
  if (definition.type === "multi_enum" && Array.isArray(stored)) return stored.join(", ");
  if (definition.type === "number" || definition.type === "integer") {
    const value = numberOf(stored);
    if (value === null) return String(stored);
    return definition.unit ? measure(value, definition.unit) : number(value);
  }
  if (definition.type === "dimensions" && typeof stored === "object") {
    const sides = stored as Record<string, unknown>;
    const parts = ["length", "width", "thickness"]
      .map((side) => sides[side])
      .filter((value): value is number => typeof value === "number");
    if (!definition.unit) return parts.map(number).join(" × ");
    return parts.map((value) => measure(value, definition.unit!)).join(" × ");
  }
  return String(stored);
}
