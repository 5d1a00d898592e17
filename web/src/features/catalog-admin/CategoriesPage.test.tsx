import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, within } from "@testing-library/react";
import { MemoryRouter } from "react-router";

import CategoriesPage from "./CategoriesPage";
import type { Category } from "./tree";

const stone: Category = {
  id: "00000000-0000-0000-0000-000000000001",
  name: "Stone",
  parent_id: null,
  path: [],
  position: 0,
  description: "Natural stone",
  properties: [{ key: "thickness", label: "Thickness", type: "number", unit: "mm", required: false, description: "" }],
  effective_properties: [{ key: "thickness", label: "Thickness", type: "number", unit: "mm", required: false, description: "" }],
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:00Z",
};

function renderAs(permissions: string[]) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  // Who is signed in, as /api/v1/me would say (no session in a test: the organization is null).
  client.setQueryData(["me", null], { permissions });
  vi.stubGlobal(
    "fetch",
    vi.fn(async () => new Response(JSON.stringify({ items: [stone], next_cursor: null }), { headers: { "Content-Type": "application/json" } })),
  );
  render(
    <QueryClientProvider client={client}>
      <MemoryRouter initialEntries={[`/catalog/categories?category=${stone.id}`]}>
        <CategoriesPage />
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

afterEach(() => vi.unstubAllGlobals());

describe("CategoriesPage", () => {
  it("lets a reader see the tree and the properties, not change them", async () => {
    renderAs(["materials:read"]);
    expect(await screen.findByRole("heading", { level: 2, name: "Stone" })).toBeInTheDocument();
    expect(screen.getByText("Natural stone")).toBeInTheDocument();
    expect(screen.getByText(/Thickness/)).toHaveTextContent("Thickness: Number · mm");
    expect(screen.getByText("Your role lets you read the categories, not change them.")).toBeInTheDocument();
    expect(screen.queryByRole("form", { name: "New category" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Delete category" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Move Stone up" })).not.toBeInTheDocument();
    const nav = screen.getByRole("navigation", { name: "Catalog management" });
    expect(within(nav).queryByRole("link", { name: "Import" })).not.toBeInTheDocument();
    expect(within(nav).getByRole("link", { name: "Trash" })).toBeInTheDocument();
  });

  it("gives a writer the forms", async () => {
    renderAs(["materials:read", "materials:write"]);
    expect(await screen.findByRole("form", { name: "New category" })).toBeInTheDocument();
    expect(screen.getByRole("form", { name: "Name and description" })).toBeInTheDocument();
    expect(screen.getByRole("form", { name: "Its own properties" })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Delete category" })).toBeInTheDocument();
    expect(within(screen.getByRole("navigation", { name: "Catalog management" })).getByRole("link", { name: "Import" })).toBeInTheDocument();
  });
});
