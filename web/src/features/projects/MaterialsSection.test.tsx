import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter } from "react-router";

import type { Project, ProjectMaterial } from "./api";
import { MaterialsSection } from "./MaterialsSection";

const project: Project = {
  id: "11111111-1111-4111-8111-111111111111",
  name: "Villa Rossi",
  client: "",
  description: "",
  status: "active",
  team_ids: [],
  recognition_count: 0,
  material_count: 1,
  totals: [],
  materials_without_total: 1,
  created_by: null,
  created_at: "2026-12-01T10:00:00Z",
  updated_at: "2026-12-01T10:00:00Z",
};

const line: ProjectMaterial = {
  material_id: "22222222-2222-4222-8222-222222222222",
  name: "Carrara honed",
  code: "CAR-01",
  category_id: null,
  deleted: false,
  quantity: null,
  unit: null,
  price: "39.90",
  currency: "EUR",
  line_total: null,
  note: "",
  recognition_id: null,
  added_by: null,
  added_at: "2026-12-01T10:00:00Z",
};

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": status < 400 ? "application/json" : "application/problem+json" },
  });
}

function serve(onPatch: (body: unknown) => Response) {
  const patches: unknown[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (request: Request) => {
      const url = new URL(request.url);
      if (request.method === "PATCH") {
        const body: unknown = await request.json();
        patches.push(body);
        return onPatch(body);
      }
      if (url.pathname.endsWith("/images")) return json({ items: [], next_cursor: null });
      if (url.pathname === `/api/v1/projects/${project.id}/materials`) return json({ items: [line], next_cursor: null });
      return json({ type: "about:blank", title: "Not Found", status: 404 }, 404);
    }),
  );
  return patches;
}

function renderSection() {
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <MemoryRouter>
        <MaterialsSection project={project} editable />
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

/** The line of the material, once loaded (generous: the first render also loads the modules). */
async function findLine(): Promise<HTMLElement> {
  const heading = await screen.findByRole("heading", { name: "Carrara honed" }, { timeout: 5000 });
  return heading.closest("li")!;
}

afterEach(() => vi.unstubAllGlobals());

describe("MaterialsSection", () => {
  it("previews the line total as the quantity is typed and saves only what changed", async () => {
    const patches = serve(() => json({ ...line, quantity: 12.5, unit: "m2", line_total: "498.75" }));
    renderSection();
    const row = await findLine();
    const user = userEvent.setup();
    await user.type(within(row).getByLabelText("Quantity"), "12,5");
    expect(within(row).getByText("€498.75")).toBeInTheDocument();
    await user.type(within(row).getByLabelText("Unit"), "m2");
    await user.click(within(row).getByRole("button", { name: "Save" }));
    expect(patches).toEqual([{ quantity: "12.5", unit: "m2" }]);
  });

  it("says beside the field why a quantity is refused, and sends nothing", async () => {
    const patches = serve(() => json(line));
    renderSection();
    const row = await findLine();
    const user = userEvent.setup();
    const quantity = within(row).getByLabelText("Quantity");
    await user.type(quantity, "1.2345");
    await user.click(within(row).getByRole("button", { name: "Save" }));
    expect(await within(row).findByText("Use at most three decimals.")).toBeInTheDocument();
    expect(quantity).toHaveAttribute("aria-invalid", "true");
    expect(patches).toEqual([]);
  });

  it("shows the server's refusal as a sentence", async () => {
    serve(() =>
      json(
        {
          type: "https://kai.dev/problems/project-archived",
          title: "The project is archived",
          status: 409,
          detail: "Project 'Villa Rossi' is archived: reopen it first.",
        },
        409,
      ),
    );
    renderSection();
    const row = await findLine();
    const user = userEvent.setup();
    await user.type(within(row).getByLabelText("Quantity"), "3");
    await user.click(within(row).getByRole("button", { name: "Save" }));
    expect(await within(row).findByRole("alert")).toHaveTextContent("archived: reopen it first.");
  });
});
