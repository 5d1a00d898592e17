import { checkDrafts, emptyDraft, fromDraft, hasErrors, inheritedOf, serverErrorsByRow, suggestKey, toDraft, type PropertyDraft } from "./schema";

function draft(patch: Partial<PropertyDraft>): PropertyDraft {
  return { ...emptyDraft(), key: "finish", label: "Finish", ...patch };
}

describe("the property schema editor", () => {
  it("sends only what suits the type", () => {
    expect(fromDraft(draft({ type: "number", unit: "mm", minimum: "2", maximum: "30,5", options: "a\nb" }))).toEqual({
      key: "finish",
      label: "Finish",
      type: "number",
      unit: "mm",
      minimum: 2,
      maximum: 30.5,
      required: false,
      description: "",
    });
    expect(fromDraft(draft({ type: "enum", unit: "mm", minimum: "1", options: " polished \n\n honed \n" }))).toEqual({
      key: "finish",
      label: "Finish",
      type: "enum",
      options: ["polished", "honed"],
      required: false,
      description: "",
    });
    expect(fromDraft(draft({ type: "boolean", required: true }))).toMatchObject({ type: "boolean", required: true });
    expect(fromDraft(draft({ type: "boolean" }))).not.toHaveProperty("unit");
  });

  it("reads a definition back as the form holds it", () => {
    const definition = { key: "thickness", label: "Thickness", type: "number" as const, unit: "mm", minimum: 2, maximum: null, required: true, description: "" };
    const back = toDraft(definition);
    expect(back).toMatchObject({ unit: "mm", minimum: "2", maximum: "", required: true, options: "" });
    expect(fromDraft(back)).toEqual({ key: "thickness", label: "Thickness", type: "number", unit: "mm", minimum: 2, required: true, description: "" });
  });

  it("finds what the server would refuse, field by field", () => {
    const errors = checkDrafts(
      [
        draft({ key: "", label: "" }),
        draft({ key: "Bad Key" }),
        draft({ key: "size", type: "dimensions", unit: "kg" }),
        draft({ key: "size" }),
        draft({ key: "weight", type: "number", minimum: "10", maximum: "2" }),
        draft({ key: "colours", type: "multi_enum", options: "Red\nred" }),
        draft({ key: "grade", type: "enum", options: "  \n" }),
        draft({ key: "origin" }),
        draft({ key: "density", type: "number", minimum: "heavy" }),
      ],
      ["origin"],
    );
    expect(errors[0]).toEqual({ key: "schema.error.keyMissing", label: "schema.error.labelMissing" });
    expect(errors[1]).toEqual({ key: "schema.error.keyPattern" });
    expect(errors[2]).toEqual({ key: "schema.error.keyTwice", unit: "schema.error.unitLength" });
    expect(errors[3]).toEqual({ key: "schema.error.keyTwice" });
    expect(errors[4]).toEqual({ maximum: "schema.error.maxBelowMin" });
    expect(errors[5]).toEqual({ options: "schema.error.optionsTwice" });
    expect(errors[6]).toEqual({ options: "schema.error.optionsMissing" });
    expect(errors[7]).toEqual({ key: "schema.error.keyInherited" });
    expect(errors[8]).toEqual({ minimum: "schema.error.notNumber" });
    expect(hasErrors(errors)).toBe(true);
    expect(hasErrors(checkDrafts([draft({ type: "dimensions", unit: "cm" })]))).toBe(false);
  });

  it("suggests a key from the label", () => {
    expect(suggestKey("Slab thickness")).toBe("slab_thickness");
    expect(suggestKey("Oberfläche (Größe)")).toBe("oberflache_grosse");
    expect(suggestKey("3D depth")).toBe("d_depth");
  });

  it("shows the parents' properties apart from its own", () => {
    const own = { key: "vein", label: "Vein", type: "text" as const, description: "", required: false };
    const parent = { key: "thickness", label: "Thickness", type: "number" as const, description: "", required: false };
    expect(inheritedOf({ properties: [own], effective_properties: [parent, own] })).toEqual([parent]);
  });

  it("puts the server's field errors on their rows", () => {
    const { rows, general } = serverErrorsByRow({
      type: "about:blank",
      title: "Invalid",
      status: 422,
      errors: [
        { loc: ["body", "properties", 1], msg: "Value error, unknown unit 'parsec'" },
        { loc: ["body", "properties", 1, "key"], msg: "String should match pattern" },
        { loc: ["body", "properties"], msg: "finish: 3 material(s): not one of the options" },
      ],
    });
    expect(rows).toEqual({ 1: "unknown unit 'parsec' key: String should match pattern" });
    expect(general).toEqual(["finish: 3 material(s): not one of the options"]);
  });
});
