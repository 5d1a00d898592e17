import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter } from "react-router";

import type { Project, Recognition } from "./api";
import { RecognitionsSection } from "./RecognitionsSection";

const project = {
  id: "11111111-1111-4111-8111-111111111111",
  name: "Villa Rossi",
  status: "active",
} as Project;

const recognition: Recognition = {
  id: "33333333-3333-4333-8333-333333333333",
  created_at: "2026-12-01T10:00:00Z",
  project_id: project.id,
  file_name: "kitchen-floor.jpg",
  width: 640,
  height: 480,
  unknown: false,
  unknown_reason: null,
  label: "Carrara",
  category_id: null,
  confidence: 0.91,
  predictions: [],
  similar: [],
  model_version: null,
  timings: {},
  image_url: "/api/v1/recognitions/33333333-3333-4333-8333-333333333333/image",
};

function json(body: unknown, status = 200): Response {
  return new Response(status === 204 ? null : JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json" },
  });
}

afterEach(() => vi.unstubAllGlobals());

describe("RecognitionsSection", () => {
  it("links each photo to its recognition and takes one out of the project", async () => {
    const calls: string[] = [];
    let filed = [recognition];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (request: Request) => {
        const url = new URL(request.url);
        calls.push(`${request.method} ${url.pathname}${url.search}`);
        if (request.method === "DELETE") {
          filed = [];
          return json(null, 204);
        }
        if (url.pathname === "/api/v1/recognitions") return json({ items: filed, next_cursor: null });
        return new Response(new Blob(["x"], { type: "image/webp" }));
      }),
    );
    render(
      <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
        <MemoryRouter>
          <RecognitionsSection project={project} editable />
        </MemoryRouter>
      </QueryClientProvider>,
    );
    const link = await screen.findByRole("link", { name: /Carrara/ }, { timeout: 5000 });
    expect(link).toHaveAttribute("href", `/recognize/${recognition.id}`);
    expect(calls).toContain(`GET /api/v1/recognitions?project_id=${project.id}&limit=50`);

    const remove = screen.getByRole("button", { name: "Remove from project: kitchen-floor.jpg" });
    // Its name begins with the words it shows, which are what a voice-control user says.
    expect(remove).toHaveTextContent("Remove from project");
    await userEvent.setup().click(remove);
    expect(await screen.findByText("No recognitions are filed in this project yet.")).toBeInTheDocument();
    expect(calls).toContain(`DELETE /api/v1/projects/${project.id}/recognitions/${recognition.id}`);
  });

  it("shows a near-certain answer as the recognition screen does, never as 100%", async () => {
    const sure = { ...recognition, confidence: 0.9996 };
    vi.stubGlobal(
      "fetch",
      vi.fn(async (request: Request) =>
        new URL(request.url).pathname === "/api/v1/recognitions"
          ? json({ items: [sure], next_cursor: null })
          : new Response(new Blob(["x"], { type: "image/webp" })),
      ),
    );
    render(
      <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
        <MemoryRouter>
          <RecognitionsSection project={project} editable={false} />
        </MemoryRouter>
      </QueryClientProvider>,
    );
    const link = await screen.findByRole("link", { name: /Carrara/ }, { timeout: 5000 });
    expect(link).toHaveTextContent("99.9%");
    expect(link).not.toHaveTextContent("100%");
  });

  it("offers no removal to someone who may only read", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async (request: Request) =>
        new URL(request.url).pathname === "/api/v1/recognitions"
          ? json({ items: [recognition], next_cursor: null })
          : new Response(new Blob(["x"], { type: "image/webp" })),
      ),
    );
    render(
      <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
        <MemoryRouter>
          <RecognitionsSection project={project} editable={false} />
        </MemoryRouter>
      </QueryClientProvider>,
    );
    expect(await screen.findByRole("link", { name: /Carrara/ }, { timeout: 5000 })).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /Remove/ })).not.toBeInTheDocument();
  });
});
