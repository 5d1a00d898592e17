// The catalog management screens' calls that the typed client cannot make as they are
// (multipart uploads, downloads) and the queries several screens share.
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useCallback } from "react";

import { api, authedFetch, type Schemas } from "../../api/client";
import { ApiError, isProblem, unwrap } from "../../api/problem";
import type { Category } from "./tree";

export type ImportReport = Schemas["ImportReportRead"];
export type ImportStarted = Schemas["ImportStarted"];
export type ImportMode = "all_or_nothing" | "skip_invalid";

/**
 * After materials change here (imported, restored, purged): their own pages and the trash, and
 * the catalog's lists and counts, kept under "catalog", which while still fresh would show the
 * catalog as it was before.
 */
export function useMaterialsChanged() {
  const client = useQueryClient();
  return useCallback(
    () =>
      Promise.all([
        client.invalidateQueries({ queryKey: ["materials"] }),
        client.invalidateQueries({ queryKey: ["catalog"] }),
      ]),
    [client],
  );
}

/** Every category of the organization, all pages of them. */
export function useCategories() {
  return useQuery({
    queryKey: ["categories", "all"],
    queryFn: async () => {
      const items: Category[] = [];
      let cursor: string | undefined;
      do {
        const page = unwrap(await api.GET("/api/v1/categories", { params: { query: { limit: 200, cursor } } }));
        items.push(...page.items);
        cursor = page.next_cursor ?? undefined;
      } while (cursor);
      return items;
    },
  });
}

function url(path: string): URL {
  return new URL(path, globalThis.location?.origin ?? "http://localhost");
}

async function problemOf(answer: Response): Promise<never> {
  let body: unknown = null;
  try {
    body = await answer.json();
  } catch {
    // Not JSON (a proxy's page): the status says enough.
  }
  throw new ApiError(
    isProblem(body) ? body : { type: "about:blank", title: answer.statusText || "The server could not answer", status: answer.status },
  );
}

/** POST the file as the import form; a dry run answers its report, a real one its job. */
export async function postImport(
  file: File,
  options: { dryRun: boolean; mode: ImportMode; mapping?: string },
): Promise<ImportReport | ImportStarted> {
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("mode", options.mode);
  form.append("dry_run", String(options.dryRun));
  if (options.mapping?.trim()) form.append("mapping", options.mapping.trim());
  const answer = await authedFetch(new Request(url("/api/v1/catalog/imports"), { method: "POST", body: form }));
  if (!answer.ok) return problemOf(answer);
  return (await answer.json()) as ImportReport | ImportStarted;
}

export function isStarted(answer: ImportReport | ImportStarted): answer is ImportStarted {
  return "job" in answer;
}

/** A job's result, when it is an import's report. */
export function reportOf(result: unknown): ImportReport | null {
  if (typeof result !== "object" || result === null) return null;
  const report = result as Partial<ImportReport>;
  return typeof report.rows === "number" && Array.isArray(report.errors) ? (report as ImportReport) : null;
}

/** The export as a file: its bytes and the name the server gave it. */
export async function fetchExport(format: "csv" | "json", categoryId: string | null): Promise<{ blob: Blob; fileName: string }> {
  const address = url("/api/v1/catalog/exports");
  address.searchParams.set("format", format);
  if (categoryId) address.searchParams.set("category_id", categoryId);
  const answer = await authedFetch(new Request(address));
  if (!answer.ok) return problemOf(answer);
  const disposition = answer.headers.get("Content-Disposition") ?? "";
  const fileName = /filename="?([^";]+)"?/.exec(disposition)?.[1] ?? `catalog.${format}`;
  return { blob: await answer.blob(), fileName };
}
