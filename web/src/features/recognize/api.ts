// What the recognition screens ask of the API.
import { useQuery } from "@tanstack/react-query";

import { api, authedFetch, type Schemas } from "../../api/client";
import { ApiError, isProblem, unwrap } from "../../api/problem";
import { useCursorList } from "../../components/lists";

export type Recognition = Schemas["RecognitionRead"];
export type Prediction = Schemas["Prediction"];
export type SimilarMaterial = Schemas["SimilarMaterial"];
export type Batch = Schemas["BatchRead"];
export type BatchResult = Schemas["BatchResultRead"];
export type LookAlike = Schemas["LookAlike"];
export type Category = Schemas["CategoryRead"];
export type Project = Schemas["ProjectRead"];

/** A multipart upload to an API route: the form as it is, with the session's token. */
async function upload<T>(path: string, form: FormData): Promise<T> {
  const answer = await authedFetch(new Request(new URL(path, window.location.origin), { method: "POST", body: form }));
  const body: unknown = await answer.json().catch(() => undefined);
  if (!answer.ok) {
    throw new ApiError(
      isProblem(body) ? body : { type: "about:blank", title: answer.statusText || "The server could not answer", status: answer.status },
    );
  }
  return body as T;
}

export function recognizePhoto(file: File): Promise<Recognition> {
  const form = new FormData();
  form.append("file", file, file.name || "photo.jpg");
  return upload<Recognition>("/api/v1/recognitions", form);
}

export function startBatch(files: File[]): Promise<Batch> {
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  return upload<Batch>("/api/v1/recognition-batches", form);
}

export function searchByImage(file: File): Promise<Schemas["LookAlikes"]> {
  const form = new FormData();
  form.append("file", file, file.name || "photo.jpg");
  form.append("k", "12");
  return upload<Schemas["LookAlikes"]>("/api/v1/search/images", form);
}

export function useRecognition(id: string | undefined) {
  return useQuery({
    queryKey: ["recognitions", id],
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/recognitions/{recognition_id}", { params: { path: { recognition_id: id! } } })),
    enabled: Boolean(id),
  });
}

export function useRecentRecognitions() {
  return useCursorList(["recognitions", "list"], async (cursor) =>
    unwrap(await api.GET("/api/v1/recognitions", { params: { query: { cursor, limit: 20 } } })),
  );
}

export function useRecognitionSettings(enabled = true) {
  return useQuery({
    queryKey: ["recognitions", "settings"],
    queryFn: async () => unwrap(await api.GET("/api/v1/recognitions/settings")),
    enabled,
    staleTime: 5 * 60_000,
  });
}

/** Every category, in tree order (parents before children), for "it is actually …". */
export function useCategories(enabled = true) {
  return useQuery({
    queryKey: ["categories", "all"],
    queryFn: async () => {
      const all: Category[] = [];
      let cursor: string | undefined;
      do {
        const page = unwrap(await api.GET("/api/v1/categories", { params: { query: { cursor, limit: 200 } } }));
        all.push(...page.items);
        cursor = page.next_cursor ?? undefined;
      } while (cursor);
      return all;
    },
    enabled,
    staleTime: 60_000,
  });
}

export function useActiveProjects(enabled = true) {
  return useQuery({
    queryKey: ["projects", "active-for-recognize"],
    queryFn: async () => unwrap(await api.GET("/api/v1/projects", { params: { query: { status: "active", limit: 200 } } })),
    enabled,
  });
}

export function useBatches() {
  return useCursorList(["recognition-batches", "list"], async (cursor) =>
    unwrap(await api.GET("/api/v1/recognition-batches", { params: { query: { cursor, limit: 20 } } })),
  );
}

export const BATCH_ENDED = new Set<Batch["status"]>(["succeeded", "failed"]);

/** A batch, polled every second while it runs. */
export function useBatch(id: string | undefined) {
  return useQuery({
    queryKey: ["recognition-batches", id],
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/recognition-batches/{batch_id}", { params: { path: { batch_id: id! } } })),
    enabled: Boolean(id),
    refetchInterval: (query) => (query.state.data && BATCH_ENDED.has(query.state.data.status) ? false : 1000),
  });
}

export function useBatchResults(id: string) {
  // The route answers JSON pages or CSV; asked without `format`, it is the JSON page.
  return useCursorList(["recognition-batches", id, "results"], async (cursor) =>
    unwrap(
      await api.GET("/api/v1/recognition-batches/{batch_id}/results", {
        params: { path: { batch_id: id }, query: { cursor, limit: 50 } },
      }),
    ) as Schemas["Page_BatchResultRead_"],
  );
}

/** The batch's results as a CSV file, fetched with the token and offered as a download. */
export async function downloadResultsCsv(batchId: string): Promise<void> {
  const url = new URL(`/api/v1/recognition-batches/${batchId}/results`, window.location.origin);
  url.searchParams.set("format", "csv");
  const answer = await authedFetch(new Request(url, { headers: { Accept: "text/csv" } }));
  if (!answer.ok) {
    const body: unknown = await answer.json().catch(() => undefined);
    throw new ApiError(isProblem(body) ? body : { type: "about:blank", title: answer.statusText, status: answer.status });
  }
  const blob = await answer.blob();
  const href = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = href;
  link.download = `recognitions-${batchId}.csv`;
  document.body.append(link);
  link.click();
  link.remove();
  window.setTimeout(() => URL.revokeObjectURL(href), 10_000);
}

export type ReviewQueue = Schemas["ReviewQueueRead"];

export function useReviewQueue() {
  return useQuery({
    queryKey: ["review-queue"],
    queryFn: async () => unwrap(await api.GET("/api/v1/review-queue", { params: { query: { top: 20 } } })),
  });
}
