import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter } from "react-router";

import { PERMISSIONS, type Role } from "./matrix";
import { RolesPage } from "./RolesPage";

const ROLES: Role[] = [
  { id: null, key: "owner", name: "Owner", description: "", permissions: [...PERMISSIONS], built_in: true },
  { id: null, key: "analyst", name: "Analyst", description: "", permissions: ["materials:read", "members:read"], built_in: true },
  { id: "0d6f3a40-0000-4000-8000-000000000001", key: "surveyor", name: "Surveyor", description: "", permissions: ["materials:read"], built_in: false },
];

function json(status: number, body: unknown): Response {
  return new Response(status === 204 ? null : JSON.stringify(body), {
    status,
    headers: { "Content-Type": status < 400 ? "application/json" : "application/problem+json" },
  });
}

function renderRoles(permissions: string[], sent: { method: string; url: string; body: unknown }[]) {
  vi.stubGlobal(
    "fetch",
    vi.fn(async (request: Request) => {
      const body = request.method === "GET" || request.method === "DELETE" ? undefined : await request.json();
      sent.push({ method: request.method, url: new URL(request.url).pathname, body });
      if (request.method === "GET") return json(200, { items: ROLES, next_cursor: null });
      if (request.method === "POST") return json(201, { id: "new", built_in: false, description: "", ...(body as object) });
      return json(200, { ...ROLES[2], ...(body as object) });
    }),
  );
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  client.setQueryData(["me", null], { permissions, kind: "user", role: "admin", user: null, organization: null });
  render(
    <QueryClientProvider client={client}>
      <MemoryRouter>
        <RolesPage />
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

afterEach(() => vi.unstubAllGlobals());

describe("RolesPage", { timeout: 30_000 }, () => {
  it("shows built-in roles read-only and saves a custom role's changed column", async () => {
    const sent: { method: string; url: string; body: unknown }[] = [];
    renderRoles([...PERMISSIONS], sent);
    const user = userEvent.setup();
    const ownerCell = await screen.findByRole("checkbox", { name: "Read the catalog — Owner" });
    expect(ownerCell).toBeChecked();
    expect(ownerCell).toBeDisabled();
    expect(screen.getByRole("checkbox", { name: "Edit the catalog — Analyst" })).not.toBeChecked();

    const save = screen.getByRole("button", { name: "Save Surveyor" });
    expect(save).toBeDisabled();
    await user.click(screen.getByRole("checkbox", { name: "See models — Surveyor" }));
    expect(save).toBeEnabled();
    await user.click(save);
    expect(await screen.findByText("The role Surveyor is saved.")).toBeInTheDocument();
    const patch = sent.find((request) => request.method === "PATCH");
    expect(patch?.url).toBe("/api/v1/roles/0d6f3a40-0000-4000-8000-000000000001");
    expect(patch?.body).toEqual({ permissions: ["materials:read", "models:read"] });
  });

  it("creates a role from a new column, its key made from its name", async () => {
    const sent: { method: string; url: string; body: unknown }[] = [];
    renderRoles([...PERMISSIONS], sent);
    const user = userEvent.setup();
    await user.click(await screen.findByRole("button", { name: "New role" }));
    await user.type(screen.getByLabelText("Role name"), "Site Surveyor");
    expect(screen.getByLabelText(/^Key/)).toHaveValue("site-surveyor");
    await user.click(screen.getByRole("checkbox", { name: "Read the catalog — Site Surveyor" }));
    await user.click(screen.getByRole("checkbox", { name: "Run recognitions — Site Surveyor" }));
    await user.click(screen.getByRole("button", { name: "Create role" }));
    expect(await screen.findByText("The role Site Surveyor is created.")).toBeInTheDocument();
    expect(sent.find((request) => request.method === "POST")?.body).toEqual({
      key: "site-surveyor",
      name: "Site Surveyor",
      description: "",
      permissions: ["materials:read", "recognitions:create"],
    });
  });

  it("offers no permission the person lacks, nor a role holding more than they do", async () => {
    renderRoles(["materials:read", "members:read", "roles:manage"], []);
    const cell = await screen.findByRole("checkbox", { name: "See models — Surveyor" });
    expect(cell).toBeDisabled();
    expect(screen.getByRole("checkbox", { name: "Read the catalog — Surveyor" })).toBeEnabled();
    const table = screen.getByRole("table");
    expect(within(table).getAllByText("Fixed")).toHaveLength(2);
  });
});
