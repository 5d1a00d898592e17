import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, within } from "@testing-library/react";
import { MemoryRouter, Route, Routes } from "react-router";

import { VersionPage } from "./VersionPage";

const version = {
  id: "7b0c5a8e-0000-4000-8000-000000000001",
  number: 3,
  status: "ready",
  active: false,
  labelling: { label_by: "category", category_level: null },
  options: { test_time_augmentation: false },
  labels: [
    { label: "Granite", category_id: null, photos: 4 },
    { label: "Marble", category_id: null, photos: 4 },
  ],
  backbones: [{ name: "handcrafted", fingerprint: "handcrafted:265e7f901df5", vote: 1 }],
  metrics: {
    accuracy: 0.875,
    macro_f1: 0.873,
    per_class: [
      { label: "Granite", precision: 1, recall: 0.75, f1: 0.8571, support: 4 },
      { label: "Marble", precision: 0.8, recall: 1, f1: 0.8889, support: 4 },
    ],
    labels: ["Granite", "Marble"],
    confusion_matrix: [
      [3, 1],
      [0, 4],
    ],
    validation: { method: "stratified k-fold", folds: 4, photos: 8 },
  },
  novelty_threshold: 0.81,
  temperature: 0.5,
  error: null,
  job_id: null,
  created_by: null,
  created_at: "2026-12-01T10:00:00Z",
  trained_at: "2026-12-01T10:01:00Z",
};

function answer(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

function renderAt(path: string) {
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <MemoryRouter initialEntries={[path]}>
        <Routes>
          <Route path="/models/:versionId" element={<VersionPage />} />
        </Routes>
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

afterEach(() => vi.unstubAllGlobals());

describe("VersionPage", () => {
  it("shows the headline metrics, the per-class scores and the confusion matrix as a table", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async (request: Request) =>
        request.url.includes("/api/v1/models/") ? answer(200, version) : answer(200, { permissions: [] }),
      ),
    );
    renderAt(`/models/${version.id}`);
    expect(await screen.findByRole("heading", { level: 1, name: "Version 3" })).toBeInTheDocument();
    expect(screen.getByText("87.5%")).toBeInTheDocument();
    const scores = screen.getByRole("table", { name: "Scores per label" });
    const granite = within(scores).getByRole("row", { name: /^Granite/ });
    expect(within(granite).getAllByRole("cell").map((cell) => cell.textContent)).toEqual(["1", "0.75", "0.857", "4"]);
    const matrix = screen.getByRole("table", { name: /Confusion matrix: photos per actual/ });
    const marble = within(matrix).getByRole("row", { name: /^Marble/ });
    expect(within(marble).getAllByRole("cell").map((cell) => cell.textContent)).toEqual(["0", "4"]);
    expect(screen.getByText("1 photo of Granite was taken for Marble.")).toBeInTheDocument();
    expect(screen.getByText("handcrafted:265e7f901df5")).toBeInTheDocument();
    // Without models:deploy there is nothing to activate.
    expect(screen.queryByRole("button", { name: "Activate" })).not.toBeInTheDocument();
  });

  it("says why a failed version could not be trained", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async () =>
        answer(200, { ...version, status: "failed", metrics: {}, error: "Training needs photos of at least two labels." }),
      ),
    );
    renderAt(`/models/${version.id}`);
    expect(await screen.findByRole("alert")).toHaveTextContent(
      "Version 3 could not be trained. Training needs photos of at least two labels.",
    );
    expect(screen.queryByRole("heading", { name: "Confusion matrix" })).not.toBeInTheDocument();
  });
});
