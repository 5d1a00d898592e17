import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, within } from "@testing-library/react";
import { MemoryRouter, Route, Routes } from "react-router";

import type { Material } from "./api";
import MaterialPage from "./MaterialPage";

const fresh = {
  id: "m1",
  category_id: null,
  name: "Brushed brass",
  code: "BR-1",
  description: "",
  properties: {},
  tags: [],
  status: "draft",
  version: 1,
  units: "metric",
  thumbnail_url: null,
  deleted_at: null,
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:00Z",
} as unknown as Material;

function answer(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": status < 400 ? "application/json" : "application/problem+json" },
  });
}

afterEach(() => vi.unstubAllGlobals());

describe("MaterialPage's look-alikes", () => {
  it("says a new material has none yet, not that something went wrong", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async (request: Request) => {
        const path = new URL(request.url).pathname;
        if (path === "/api/v1/materials/m1") return answer(fresh);
        if (path === "/api/v1/materials/m1/similar") {
          // As the API answers while none of the material's photos is compared yet.
          return answer(
            { type: "material-has-no-image", title: "The material has no image to compare yet", status: 409 },
            409,
          );
        }
        return answer({ items: [], next_cursor: null });
      }),
    );
    const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
    client.setQueryData(["me", null], { permissions: ["materials:read"] });
    render(
      <QueryClientProvider client={client}>
        <MemoryRouter initialEntries={["/catalog/materials/m1"]}>
          <Routes>
            <Route path="/catalog/materials/:materialId" element={<MaterialPage />} />
          </Routes>
        </MemoryRouter>
      </QueryClientProvider>,
    );

    const panel = await screen.findByRole("region", { name: "More like this" }, { timeout: 5000 });
    expect(await within(panel).findByText(/No look-alikes yet/)).toBeInTheDocument();
    expect(within(panel).queryByRole("button", { name: "Try again" })).not.toBeInTheDocument();
  });
});
