// The catalog's conflicts in the reader's words: what stands in a category's way.
import { ApiError } from "../../api/problem";

export interface CategoryBlockers {
  subcategories: boolean;
  live: number;
  deleted: number;
}

/** What keeps a category from being deleted (409 category-in-use), read from the problem. */
export function categoryBlockers(error: unknown): CategoryBlockers | null {
  if (!(error instanceof ApiError) || error.kind !== "category-in-use") return null;
  const detail = error.problem.detail ?? "";
  const live = /(\d+) material\(s\) are filed/.exec(detail);
  const deleted = /(\d+) deleted material\(s\)/.exec(detail);
  return {
    subcategories: /subcategories/.test(detail),
    live: live ? Number(live[1]) : 0,
    deleted: deleted ? Number(deleted[1]) : 0,
  };
}

/** A sibling has the name (409 category-name-taken): said beside the name field. */
export function nameTaken(error: unknown): boolean {
  return error instanceof ApiError && error.kind === "category-name-taken";
}
