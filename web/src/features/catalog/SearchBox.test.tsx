import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";

import { SearchBox, type Suggestion } from "./SearchBox";

function answer(body: unknown): Response {
  return new Response(JSON.stringify(body), { status: 200, headers: { "Content-Type": "application/json" } });
}

function renderBox() {
  const searched: string[] = [];
  const picked: Suggestion[] = [];
  render(
    <QueryClientProvider client={new QueryClient()}>
      <SearchBox value="" onSearch={(text) => searched.push(text)} onPick={(suggestion) => picked.push(suggestion)} />
    </QueryClientProvider>,
  );
  return { searched, picked };
}

afterEach(() => vi.unstubAllGlobals());

describe("SearchBox", () => {
  beforeEach(() => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async (request: Request) => {
        const typed = new URL(request.url).searchParams.get("q");
        return answer({
          query: typed,
          suggestions: [
            { kind: "category", text: "Marble", id: "c1", score: 0.9 },
            { kind: "material", text: "Marble Carrara", id: "m1", code: "MC-1", score: 0.8 },
          ],
        });
      }),
    );
  });

  it("offers completions the arrow keys walk, and opens the one chosen", async () => {
    const { picked } = renderBox();
    const box = screen.getByRole("combobox", { name: "Search the catalog" });
    await userEvent.type(box, "marb");
    expect(await screen.findByRole("option", { name: /Marble Carrara/ })).toBeInTheDocument();
    expect(box).toHaveAttribute("aria-expanded", "true");
    await userEvent.keyboard("{ArrowDown}{ArrowDown}");
    const active = screen.getByRole("option", { name: /Marble Carrara/ });
    expect(box).toHaveAttribute("aria-activedescendant", active.id);
    expect(active).toHaveAttribute("aria-selected", "true");
    await userEvent.keyboard("{Enter}");
    expect(picked).toEqual([expect.objectContaining({ kind: "material", id: "m1" })]);
  });

  it("searches as the typing pauses, once per pause, and again on Enter; Escape closes the list", async () => {
    const { searched } = renderBox();
    const box = screen.getByRole("combobox", { name: "Search the catalog" });
    await userEvent.type(box, "marb");
    await screen.findByRole("option", { name: /Marble Carrara/ });
    // Typed faster than the pause: no search for "m", "ma" or "mar" on the way.
    await waitFor(() => expect(searched).toEqual(["marb"]));
    await userEvent.keyboard("{Escape}");
    expect(box).toHaveAttribute("aria-expanded", "false");
    await userEvent.keyboard("{Enter}");
    expect(searched).toEqual(["marb", "marb"]);
  });
});
