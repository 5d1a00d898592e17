import { QueryClient, QueryObserver } from "@tanstack/react-query";
import { describe, expect, it } from "vitest";

import { FreshQueryClient } from "./queryClient";

/** A list whose first load answers only after a change was made and invalidated. */
async function listAfterChangeDuringFirstLoad(client: QueryClient): Promise<string[] | undefined> {
  const answers: ((rows: string[]) => void)[] = [];
  const observer = new QueryObserver<string[]>(client, {
    queryKey: ["images"],
    queryFn: () => new Promise<string[]>((resolve) => answers.push(resolve)),
  });
  const unsubscribe = observer.subscribe(() => {});
  try {
    expect(answers).toHaveLength(1);
    // The upload is done; its answer invalidates the list while the first load is out.
    const invalidated = client.invalidateQueries({ queryKey: ["images"] });
    await Promise.resolve();
    // The first load's answer, read before the upload was committed.
    answers[0]!([]);
    for (let turn = 0; turn < 10 && answers.length < 2; turn += 1) await Promise.resolve();
    answers[1]?.(["photo.jpg"]);
    await invalidated;
    await new Promise((resolve) => setTimeout(resolve, 0));
    return observer.getCurrentResult().data;
  } finally {
    unsubscribe();
  }
}

describe("FreshQueryClient", () => {
  it("shows what was changed even when the change lands during the first load", async () => {
    expect(await listAfterChangeDuringFirstLoad(new FreshQueryClient())).toEqual(["photo.jpg"]);
  });

  it("is needed: the stock client keeps the answer read before the change", async () => {
    expect(await listAfterChangeDuringFirstLoad(new QueryClient())).toEqual([]);
  });
});
