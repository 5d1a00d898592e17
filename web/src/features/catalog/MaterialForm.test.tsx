import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";

import type { Category, Material } from "./api";
import { MaterialForm, type MaterialFields } from "./MaterialForm";

const units = vi.hoisted(() => ({ value: "metric" as "metric" | "imperial" }));
vi.mock("../../app/preferences", () => ({ usePreferences: () => ({ locale: "en", units: units.value }) }));

const tiles: Category = {
  id: "c1",
  parent_id: null,
  name: "Tiles",
  description: "",
  position: 0,
  path: [],
  properties: [],
  effective_properties: [
    { key: "thickness", label: "Thickness", type: "number", unit: "mm", required: true, description: "", minimum: null, maximum: null },
    { key: "finish", label: "Finish", type: "enum", options: ["polished", "honed"], required: false, description: "" },
    { key: "frost_resistant", label: "Frost resistant", type: "boolean", required: false, description: "" },
  ],
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:00Z",
};

const slate: Material = {
  id: "m1",
  category_id: "c1",
  name: "Slate",
  code: "SL-1",
  description: "",
  properties: { thickness: { value: 25.4, unit: "mm" }, finish: "honed" },
  manufacturer: "",
  supplier: "",
  price: null,
  currency: null,
  tags: [],
  status: "draft",
  version: 3,
  units: "metric",
  thumbnail_url: null,
  deleted_at: null,
  created_by: null,
  updated_by: null,
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:00Z",
};

function renderForm(material?: Material) {
  const sent: MaterialFields[] = [];
  render(
    <MaterialForm
      material={material}
      categories={[tiles]}
      initialCategoryId="c1"
      submitLabel="Save"
      pending={false}
      error={null}
      onSubmit={(fields) => sent.push(fields)}
    />,
  );
  return sent;
}

afterEach(() => {
  units.value = "metric";
});

describe("MaterialForm", () => {
  it("generates inputs from the category's schema", () => {
    renderForm();
    expect(screen.getByLabelText(/Thickness \(mm\)/)).toHaveAttribute("type", "number");
    expect(screen.getByLabelText("Finish").tagName).toBe("SELECT");
    expect(screen.getByLabelText("Frost resistant")).toHaveAttribute("type", "checkbox");
  });

  it("creates with typed values, leaving empty properties out", async () => {
    const sent = renderForm();
    await userEvent.type(screen.getByLabelText("Name"), "Basalt");
    await userEvent.type(screen.getByLabelText("Code (SKU)"), "BA-1");
    await userEvent.type(screen.getByLabelText(/Thickness/), "12");
    await userEvent.click(screen.getByLabelText("Frost resistant"));
    await userEvent.click(screen.getByRole("button", { name: "Save" }));
    expect(sent[0]).toMatchObject({ name: "Basalt", code: "BA-1", category_id: "c1", properties: { thickness: 12, frost_resistant: true } });
    expect(sent[0]!.properties).not.toHaveProperty("finish");
  });

  it("shows inches to an imperial reader and saves millimetres", async () => {
    units.value = "imperial";
    const sent = renderForm(slate);
    const thickness = screen.getByLabelText(/Thickness \(in\)/);
    expect(thickness).toHaveValue(1);
    await userEvent.clear(thickness);
    await userEvent.type(thickness, "2");
    await userEvent.click(screen.getByRole("button", { name: "Save" }));
    expect(sent[0]).toEqual({ properties: { thickness: 50.8 } });
  });

  it("sends only what changed when editing", async () => {
    const sent = renderForm(slate);
    await userEvent.selectOptions(screen.getByLabelText("Finish"), "polished");
    await userEvent.type(screen.getByLabelText(/Tags/), "outdoor, grey");
    await userEvent.click(screen.getByRole("button", { name: "Save" }));
    expect(sent[0]).toEqual({ tags: ["outdoor", "grey"], properties: { finish: "polished" } });
  });
});
