import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";

import { PropertyEditor } from "./PropertyEditor";
import type { Category } from "./tree";

function answer(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": status < 400 ? "application/json" : "application/problem+json" },
  });
}

const thickness = { key: "thickness", label: "Thickness", type: "number" as const, unit: "mm", required: true, description: "" };
const vein = { key: "vein", label: "Vein", type: "text" as const, required: false, description: "" };
const stone: Category = {
  id: "00000000-0000-0000-0000-000000000001",
  name: "Stone",
  parent_id: null,
  path: [],
  position: 0,
  description: "",
  properties: [thickness],
  effective_properties: [thickness],
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:00Z",
};
const marble: Category = {
  ...stone,
  id: "00000000-0000-0000-0000-000000000002",
  name: "Marble",
  parent_id: stone.id,
  path: [stone.id],
  properties: [vein],
  effective_properties: [thickness, vein],
};

function renderEditor() {
  render(
    <QueryClientProvider client={new QueryClient()}>
      <PropertyEditor category={marble} categories={[stone, marble]} canWrite />
    </QueryClientProvider>,
  );
}

afterEach(() => vi.unstubAllGlobals());

describe("PropertyEditor", () => {
  it("shows the parent's properties read only and saves its own with a new typed one", async () => {
    const sent: unknown[] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (request: Request) => {
        sent.push(await request.json());
        return answer(200, marble);
      }),
    );
    renderEditor();
    const user = userEvent.setup({ delay: null });
    const inherited = screen.getByRole("table");
    expect(within(inherited).getByRole("row", { name: /Thickness/ })).toHaveTextContent("Number · mm · required");
    expect(within(inherited).getByRole("row", { name: /Thickness/ })).toHaveTextContent("Stone");
    expect(screen.getByRole("group", { name: "Vein" })).toBeInTheDocument();

    await user.click(screen.getByRole("button", { name: "Add a property" }));
    await user.type(within(screen.getByRole("group", { name: "New property" })).getByLabelText("Label"), "Finish");
    const finish = screen.getByRole("group", { name: "Finish" });
    expect(within(finish).getByLabelText("Key")).toHaveValue("finish");
    await user.selectOptions(within(finish).getByLabelText("Type"), "enum");
    await user.click(screen.getByRole("button", { name: "Save properties" }));
    expect(within(finish).getByText("Give at least one option.")).toBeInTheDocument();
    expect(sent).toHaveLength(0);

    await user.type(within(finish).getByLabelText("Options"), "Polished{Enter}Honed");
    await user.click(screen.getByRole("button", { name: "Save properties" }));
    expect(await screen.findByText("Saved")).toBeInTheDocument();
    expect(sent).toEqual([
      {
        properties: [
          { key: "vein", label: "Vein", type: "text", required: false, description: "" },
          { key: "finish", label: "Finish", type: "enum", options: ["Polished", "Honed"], required: false, description: "" },
        ],
      },
    ]);
  }, 30_000);

  it("says plainly when materials use a property the change would take away", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async () =>
        answer(409, {
          type: "https://kai.dev/problems/property-in-use",
          title: "Materials use what the change would take away",
          status: 409,
          detail: "2 material(s) in this category or under it would no longer fit: vein of 2 (required).",
          errors: [{ loc: ["body", "properties"], msg: "vein: 2 material(s): required", type: "in_use" }],
        }),
      ),
    );
    renderEditor();
    const user = userEvent.setup({ delay: null });
    await user.click(screen.getByRole("button", { name: "Remove Vein" }));
    await user.click(screen.getByRole("button", { name: "Save properties" }));
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("Materials use what this change would take away, so nothing was saved.");
    expect(alert).toHaveTextContent("2 material(s) in this category or under it would no longer fit");
  });
});
