import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { ReactNode } from "react";
import { MemoryRouter } from "react-router";

import type { Recognition } from "./api";
import { LookAlikeGrid } from "./RecognitionParts";
import { Feedback, RecognitionSummary } from "./RecognitionView";

function recognition(overrides: Partial<Recognition> = {}): Recognition {
  return {
    id: "0190f0a0-0000-7000-8000-000000000001",
    created_at: "2026-12-06T10:00:00Z",
    project_id: null,
    file_name: "wall.jpg",
    width: 800,
    height: 600,
    unknown: false,
    unknown_reason: null,
    label: "Brushed brass",
    category_id: "0190f0a0-0000-7000-8000-0000000000aa",
    confidence: 0.82,
    // Deliberately out of order: the screen sorts them itself.
    predictions: [
      { label: "Grey terrazzo", category_id: null, confidence: 0.03 },
      { label: "Brushed brass", category_id: null, confidence: 0.82 },
      { label: "Blue mosaic", category_id: null, confidence: 0.15 },
    ],
    similar: [],
    model_version: { id: "0190f0a0-0000-7000-8000-0000000000bb", number: 3 },
    timings: { total: 123.4 },
    image_url: "/api/v1/recognitions/0190f0a0-0000-7000-8000-000000000001/image",
    ...overrides,
  };
}

function wrap(children: ReactNode) {
  return render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <MemoryRouter>{children}</MemoryRouter>
    </QueryClientProvider>,
  );
}

beforeEach(() => {
  vi.stubGlobal(
    "fetch",
    vi.fn(async () => new Response(null, { status: 404 })),
  );
});
afterEach(() => vi.unstubAllGlobals());

describe("RecognitionSummary", () => {
  it("shows a bar per label, most confident first, with its percentage", () => {
    wrap(<RecognitionSummary recognition={recognition()} />);
    const bars = within(screen.getByRole("list", { name: "Predictions" })).getAllByRole("listitem");
    expect(bars.map((bar) => bar.textContent)).toEqual(["Brushed brass82%", "Blue mosaic15%", "Grey terrazzo3%"]);
    expect(screen.getByText("Most likely Brushed brass")).toBeInTheDocument();
    expect(screen.getByText("Model version 3")).toBeInTheDocument();
    expect(screen.queryByText("KAI does not know what this is")).not.toBeInTheDocument();
  });

  it("explains a low confidence with the organization's threshold", () => {
    wrap(
      <RecognitionSummary
        recognition={recognition({ unknown: true, unknown_reason: "low_confidence", label: null, category_id: null, confidence: 0.41, predictions: [
          { label: "Blue mosaic", category_id: null, confidence: 0.3 },
          { label: "Brushed brass", category_id: null, confidence: 0.41 },
        ] })}
        threshold={0.6}
      />,
    );
    expect(screen.getByText("Unknown")).toBeInTheDocument();
    expect(screen.queryByText(/Most likely/)).not.toBeInTheDocument();
    const note = screen.getByRole("note");
    expect(within(note).getByRole("heading")).toHaveTextContent("KAI does not know what this is");
    expect(note).toHaveTextContent("Its best guess, Brushed brass at 41%, is under the confidence your organization asks for (60%).");
  });

  it("never rounds an unsure answer up to a certain-looking 100%", () => {
    wrap(
      <RecognitionSummary
        recognition={recognition({ unknown: true, unknown_reason: "low_confidence", label: null, predictions: [
          { label: "Grey terrazzo", category_id: null, confidence: 0.9999 },
        ] })}
        threshold={1}
      />,
    );
    expect(screen.getByRole("note")).toHaveTextContent("Grey terrazzo at 99.9%, is under the confidence your organization asks for (100%).");
    expect(screen.getByRole("list", { name: "Predictions" })).toHaveTextContent("99.9%");
  });

  it("explains a photo unlike anything the model learned from", () => {
    wrap(<RecognitionSummary recognition={recognition({ unknown: true, unknown_reason: "unlike_training", label: null })} />);
    expect(screen.getByRole("note")).toHaveTextContent("looks unlike every photo the model learned from");
    // The guesses stay visible for reference, still sorted.
    const bars = within(screen.getByRole("list", { name: "Predictions" })).getAllByRole("listitem");
    expect(bars[0]).toHaveTextContent("Brushed brass");
  });
});

describe("LookAlikeGrid", () => {
  it("links each similar material to its catalog page with its score", () => {
    wrap(
      <LookAlikeGrid
        empty="none"
        items={[{ material_id: "m-1", name: "Brass sheet", code: "BR-1", score: 0.934, image_url: "/api/v1/materials/m-1/images/i/thumbnail" }]}
      />,
    );
    const link = screen.getByRole("link", { name: /Brass sheet/ });
    expect(link).toHaveAttribute("href", "/catalog/materials/m-1");
    expect(link).toHaveTextContent("Similarity 93.4%");
  });

  it("says so when nothing looks alike", () => {
    wrap(<LookAlikeGrid empty="Nothing alike." items={[]} />);
    expect(screen.getByText("Nothing alike.")).toBeInTheDocument();
  });
});

describe("Feedback", () => {
  const brass = { material_id: "0190f0a0-0000-7000-8000-0000000000m1", name: "Brass sheet", code: "BR-1", score: 0.93, image_url: "/i" };
  const metal = { id: "0190f0a0-0000-7000-8000-0000000000c1", name: "Metal", path: [] };

  function answering(): RequestInit[] {
    const sent: RequestInit[] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (input: Request) => {
        if (input.url.includes("/feedback")) {
          sent.push({ body: await input.text() });
          return Response.json({}, { status: 201 });
        }
        return Response.json({ items: [metal], next_cursor: null });
      }),
    );
    return sent;
  }

  it("corrects by one of the similar materials, which a model by material learns from", async () => {
    const sent = answering();
    wrap(<Feedback recognition={recognition({ similar: [brass] })} />);
    await userEvent.click(screen.getByRole("button", { name: "It is actually …" }));
    const what = screen.getByLabelText("What the photo really is");
    await waitFor(() => expect(within(what).getByRole("option", { name: "Metal" })).toBeInTheDocument());
    await userEvent.selectOptions(what, "Brass sheet (BR-1)");
    await userEvent.click(screen.getByRole("button", { name: "Send the correction" }));

    expect(await screen.findByRole("status")).toHaveTextContent("kept as Brass sheet");
    expect(JSON.parse(String(sent[0]!.body))).toEqual({ correct: false, material_id: brass.material_id, comment: "" });
  });

  it("corrects by a category when no material fits", async () => {
    const sent = answering();
    wrap(<Feedback recognition={recognition({ similar: [brass] })} />);
    await userEvent.click(screen.getByRole("button", { name: "It is actually …" }));
    const what = screen.getByLabelText("What the photo really is");
    await waitFor(() => expect(within(what).getByRole("option", { name: "Metal" })).toBeInTheDocument());
    await userEvent.selectOptions(what, "Metal");
    await userEvent.click(screen.getByRole("button", { name: "Send the correction" }));

    expect(await screen.findByRole("status")).toHaveTextContent("kept as Metal");
    expect(JSON.parse(String(sent[0]!.body))).toEqual({ correct: false, category_id: metal.id, comment: "" });
  });
});
