// The typed API client, generated from KAI's own OpenAPI document (src/api/schema.d.ts).
import createClient from "openapi-fetch";

import { currentToken, refresh } from "../auth/session";
import type { paths } from "./schema";

/** fetch with the session's bearer token, renewed once when the server says it expired. */
export async function authedFetch(input: Request): Promise<Response> {
  const retry = input.clone();
  const token = await currentToken();
  if (token) input.headers.set("Authorization", `Bearer ${token}`);
  const answer = await fetch(input);
  if (answer.status !== 401 || !token) return answer;
  const renewed = await refresh();
  if (!renewed) return answer;
  retry.headers.set("Authorization", `Bearer ${renewed}`);
  return fetch(retry);
}

export const api = createClient<paths>({ baseUrl: globalThis.location?.origin ?? "", fetch: authedFetch });

export type { components, paths } from "./schema";
export type Schemas = import("./schema").components["schemas"];
