// The property schema editor's logic: drafts as the form holds them (strings, as typed), checked
// the way the server will check them, and turned into PropertyDefinitions.
import type { Schemas } from "../../api/client";
import type { Problem } from "../../api/problem";

export type PropertyDefinition = Schemas["PropertyDefinition"];
export type PropertyType = PropertyDefinition["type"];

export const PROPERTY_TYPES: PropertyType[] = [
  "text",
  "number",
  "integer",
  "boolean",
  "enum",
  "multi_enum",
  "colour",
  "dimensions",
];

/** The units the server knows (src/kai/catalog/units.py), by what they measure. */
export const UNITS: Record<string, string[]> = {
  length: ["mm", "cm", "m", "in", "ft"],
  area: ["mm2", "cm2", "m2", "in2", "ft2"],
  mass: ["g", "kg", "t", "oz", "lb"],
  mass_per_area: ["kg/m2", "g/m2", "lb/ft2", "oz/yd2"],
  density: ["kg/m3", "g/cm3", "lb/ft3"],
  pressure: ["MPa", "N/mm2", "kPa", "psi"],
  temperature: ["K", "degC", "degF"],
  volume: ["ml", "l", "m3", "fl_oz", "gal"],
  percent: ["%"],
  thermal_conductivity: ["W/mK"],
};

export const KEY_PATTERN = /^[a-z][a-z0-9_]{0,62}$/;

export function hasUnit(type: PropertyType): boolean {
  return type === "number" || type === "dimensions";
}

export function hasRange(type: PropertyType): boolean {
  return type === "number" || type === "integer" || type === "dimensions";
}

export function hasOptions(type: PropertyType): boolean {
  return type === "enum" || type === "multi_enum";
}

/** The units a property of this type may have: lengths only for dimensions. */
export function unitsFor(type: PropertyType): string[] {
  if (type === "dimensions") return UNITS.length!;
  return hasUnit(type) ? Object.values(UNITS).flat() : [];
}

export interface PropertyDraft {
  key: string;
  label: string;
  type: PropertyType;
  unit: string;
  minimum: string;
  maximum: string;
  /** One option a line. */
  options: string;
  required: boolean;
  description: string;
}

export type DraftField = keyof PropertyDraft;
export type DraftErrors = Partial<Record<DraftField, string>>;

export function emptyDraft(): PropertyDraft {
  return { key: "", label: "", type: "text", unit: "", minimum: "", maximum: "", options: "", required: false, description: "" };
}

export function toDraft(definition: PropertyDefinition): PropertyDraft {
  return {
    key: definition.key,
    label: definition.label,
    type: definition.type,
    unit: definition.unit ?? "",
    minimum: definition.minimum == null ? "" : String(definition.minimum),
    maximum: definition.maximum == null ? "" : String(definition.maximum),
    options: (definition.options ?? []).join("\n"),
    required: definition.required ?? false,
    description: definition.description ?? "",
  };
}

export function optionList(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((option) => option.trim())
    .filter(Boolean);
}

function number(text: string): number | null {
  const trimmed = text.trim().replace(",", ".");
  return trimmed === "" ? null : Number(trimmed);
}

/** What the server receives: only the fields that suit the type. */
export function fromDraft(draft: PropertyDraft): PropertyDefinition {
  const definition: PropertyDefinition = {
    key: draft.key.trim(),
    label: draft.label.trim(),
    type: draft.type,
    required: draft.required,
    description: draft.description.trim(),
  };
  if (hasUnit(draft.type) && draft.unit) definition.unit = draft.unit;
  if (hasRange(draft.type)) {
    const minimum = number(draft.minimum);
    const maximum = number(draft.maximum);
    if (minimum !== null) definition.minimum = minimum;
    if (maximum !== null) definition.maximum = maximum;
  }
  if (hasOptions(draft.type)) definition.options = optionList(draft.options);
  return definition;
}

/** A key from a label: "Slab thickness" -> "slab_thickness". */
export function suggestKey(label: string): string {
  const key = label
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/ß/g, "ss")
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^[^a-z]+/, "")
    .replace(/_+$/, "")
    .slice(0, 63);
  return key;
}

/** Message keys (of the catalogAdmin strings) per field of each draft; empty when all is well. */
export function checkDrafts(drafts: PropertyDraft[], inheritedKeys: string[] = []): DraftErrors[] {
  const seen = new Map<string, number>();
  for (const draft of drafts) seen.set(draft.key.trim(), (seen.get(draft.key.trim()) ?? 0) + 1);
  return drafts.map((draft) => {
    const errors: DraftErrors = {};
    const key = draft.key.trim();
    if (!key) errors.key = "schema.error.keyMissing";
    else if (!KEY_PATTERN.test(key)) errors.key = "schema.error.keyPattern";
    else if ((seen.get(key) ?? 0) > 1) errors.key = "schema.error.keyTwice";
    else if (inheritedKeys.includes(key)) errors.key = "schema.error.keyInherited";
    if (!draft.label.trim()) errors.label = "schema.error.labelMissing";
    if (draft.type === "dimensions" && !UNITS.length!.includes(draft.unit)) errors.unit = "schema.error.unitLength";
    if (hasRange(draft.type)) {
      const minimum = number(draft.minimum);
      const maximum = number(draft.maximum);
      if (minimum !== null && !Number.isFinite(minimum)) errors.minimum = "schema.error.notNumber";
      if (maximum !== null && !Number.isFinite(maximum)) errors.maximum = "schema.error.notNumber";
      if (minimum !== null && maximum !== null && Number.isFinite(minimum) && Number.isFinite(maximum) && minimum > maximum)
        errors.maximum = "schema.error.maxBelowMin";
    }
    if (hasOptions(draft.type)) {
      const options = optionList(draft.options);
      const lower = options.map((option) => option.toLowerCase());
      if (!options.length) errors.options = "schema.error.optionsMissing";
      else if (new Set(lower).size !== lower.length) errors.options = "schema.error.optionsTwice";
    }
    return errors;
  });
}

export function hasErrors(errors: DraftErrors[]): boolean {
  return errors.some((row) => Object.keys(row).length > 0);
}

/** The properties of the category's ancestors: shown, not edited here. */
export function inheritedOf(category: { properties: PropertyDefinition[]; effective_properties: PropertyDefinition[] }): PropertyDefinition[] {
  const own = new Set(category.properties.map((property) => property.key));
  return category.effective_properties.filter((property) => !own.has(property.key));
}

/**
 * The server's field errors on `properties` by row: `["body", "properties", 2, "unit"]` is row 2;
 * the rest (the list as a whole, "in use" details) as sentences.
 */
export function serverErrorsByRow(problem: Problem): { rows: Record<number, string>; general: string[] } {
  const rows: Record<number, string> = {};
  const general: string[] = [];
  for (const error of problem.errors ?? []) {
    const path = error.loc.filter((part) => part !== "body");
    const message = error.msg.replace(/^Value error, /, "");
    if (path[0] === "properties" && typeof path[1] === "number") {
      const field = typeof path[2] === "string" ? `${path[2]}: ` : "";
      rows[path[1]] = rows[path[1]] ? `${rows[path[1]]} ${field}${message}` : `${field}${message}`;
    } else general.push(message);
  }
  return { rows, general };
}
