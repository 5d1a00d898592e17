import { bareValues, changedValues, fromInputs, inputSpecs, toInputs, toShown, toStored, type PropertyDefinition } from "./schemaForm";

const schema: PropertyDefinition[] = [
  { key: "thickness", label: "Thickness", type: "number", unit: "mm", minimum: 0, maximum: 254, required: true, description: "" },
  { key: "slabs", label: "Slabs", type: "integer", description: "", required: false },
  { key: "finish", label: "Finish", type: "enum", options: ["polished", "honed"], description: "", required: false },
  { key: "uses", label: "Uses", type: "multi_enum", options: ["floor", "wall"], description: "", required: false },
  { key: "frost_resistant", label: "Frost resistant", type: "boolean", description: "", required: false },
  { key: "origin", label: "Origin", type: "text", description: "", required: false },
  { key: "size", label: "Size", type: "dimensions", unit: "mm", description: "", required: false },
];

describe("inputs from a category's schema", () => {
  it("gives each property type its input", () => {
    const kinds = inputSpecs(schema, "metric").map((spec) => [spec.key, spec.kind]);
    expect(kinds).toEqual([
      ["thickness", "number"],
      ["slabs", "integer"],
      ["finish", "select"],
      ["uses", "multiselect"],
      ["frost_resistant", "checkbox"],
      ["origin", "text"],
      ["size", "dimensions"],
    ]);
  });

  it("shows the unit and the limits in the reader's system", () => {
    const [metric] = inputSpecs(schema, "metric");
    expect(metric).toMatchObject({ unit: "mm", min: 0, max: 254, required: true });
    const [imperial] = inputSpecs(schema, "imperial");
    expect(imperial).toMatchObject({ unit: "in", min: 0, max: 10 });
  });

  it("fills the inputs from stored values, numbers as the API presents them", () => {
    const inputs = toInputs(
      schema,
      {
        thickness: { value: 20, unit: "mm" },
        slabs: 3,
        finish: "honed",
        uses: ["floor"],
        frost_resistant: true,
        size: { length: 600, width: 300, unit: "mm" },
      },
      "metric",
    );
    expect(inputs).toEqual({
      thickness: "20",
      slabs: "3",
      finish: "honed",
      uses: ["floor"],
      frost_resistant: true,
      origin: "",
      size: { length: "600", width: "300", thickness: "" },
    });
  });

  it("converts millimetres to inches for an imperial reader and back to millimetres to store", () => {
    const inputs = toInputs(schema, { thickness: { value: 25.4, unit: "mm" } }, "imperial");
    expect(inputs.thickness).toBe("1");
    const stored = fromInputs(schema, { ...inputs, thickness: "0.5" }, "imperial");
    expect(stored.thickness).toBe(12.7);
  });

  it("round-trips a value an imperial reader did not touch", () => {
    const values = { thickness: { value: 20, unit: "mm" } };
    const inputs = toInputs(schema, values, "imperial");
    expect(fromInputs(schema, inputs, "imperial").thickness).toBeCloseTo(20, 3);
  });

  it("sends empty inputs as no value and keeps what does not parse for the server to name", () => {
    const values = fromInputs(
      schema,
      { thickness: "", slabs: "many", finish: "", uses: [], frost_resistant: false, origin: "  ", size: { length: "", width: "", thickness: "" } },
      "metric",
    );
    expect(values).toEqual({ thickness: null, slabs: "many", finish: null, uses: null, frost_resistant: false, origin: null, size: null });
  });

  it("accepts a decimal comma", () => {
    expect(fromInputs(schema, { thickness: "12,5" }, "metric").thickness).toBe(12.5);
  });

  it("converts each side of dimensions", () => {
    const values = fromInputs(schema, { size: { length: "24", width: "12", thickness: "" } }, "imperial");
    expect(values.size).toEqual({ length: 609.6, width: 304.8 });
  });

  it("converts in both directions without drift", () => {
    expect(toStored(toShown(30, "mm", "imperial"), "mm", "imperial")).toBeCloseTo(30, 3);
    expect(toShown(1, "m2", "imperial")).toBeCloseTo(10.7639, 4);
    expect(toShown(3, "PEI", "imperial")).toBe(3);
  });
});

describe("what a save sends", () => {
  it("is only the properties that changed", () => {
    const stored = { thickness: { value: 20, unit: "mm" }, finish: "honed" };
    const before = bareValues(schema, stored);
    const after = fromInputs(schema, { ...toInputs(schema, stored, "metric"), thickness: "30" }, "metric");
    expect(changedValues(before, after)).toEqual({ thickness: 30 });
  });

  it("removes a cleared value with null", () => {
    const stored = { finish: "honed" };
    const after = fromInputs(schema, { ...toInputs(schema, stored, "metric"), finish: "" }, "metric");
    expect(changedValues(bareValues(schema, stored), after)).toEqual({ finish: null });
  });
});
