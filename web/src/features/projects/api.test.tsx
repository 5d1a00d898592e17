import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { act, renderHook } from "@testing-library/react";
import type { ReactNode } from "react";

import { useProjectMutation } from "./api";

describe("useProjectMutation", () => {
  it("offers a new project at once wherever projects are chosen, not only in the lists", async () => {
    const client = new QueryClient({ defaultOptions: { queries: { staleTime: 10_000 } } });
    // What the recognition screen knew before: no project to file the photo in.
    client.setQueryData(["projects", "active-for-recognize"], { items: [], next_cursor: null });
    const wrapper = ({ children }: { children: ReactNode }) => <QueryClientProvider client={client}>{children}</QueryClientProvider>;
    const { result } = renderHook(() => useProjectMutation(async (name: string) => ({ id: "p1", name })), { wrapper });

    await act(() => result.current.mutateAsync("Harbour Office"));

    expect(client.getQueryState(["projects", "active-for-recognize"])?.isInvalidated).toBe(true);
  });
});
