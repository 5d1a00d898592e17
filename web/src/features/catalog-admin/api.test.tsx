import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { act, renderHook } from "@testing-library/react";
import type { ReactNode } from "react";

import { useMaterialsChanged } from "./api";

describe("useMaterialsChanged", () => {
  it("has the catalog's list and counts asked again, not only the materials' own pages", async () => {
    const client = new QueryClient({ defaultOptions: { queries: { staleTime: 30_000 } } });
    // The catalog as it was before an import: two materials, still fresh.
    const search = ["catalog", "search", {}, "newest"];
    const facets = ["catalog", "facets", {}];
    client.setQueryData(search, { pages: [{ items: [], total: 2 }], pageParams: [null] });
    client.setQueryData(facets, { total: 2 });
    client.setQueryData(["materials", "m1"], { id: "m1" });
    const wrapper = ({ children }: { children: ReactNode }) => <QueryClientProvider client={client}>{children}</QueryClientProvider>;
    const { result } = renderHook(() => useMaterialsChanged(), { wrapper });

    await act(() => result.current());

    for (const key of [search, facets, ["materials", "m1"]]) {
      expect(client.getQueryState(key)?.isInvalidated).toBe(true);
    }
  });
});
