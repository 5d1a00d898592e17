// The signed-in session: the access token lives in this module's memory only. The refresh
// token is an HttpOnly cookie the server sets for the auth routes; no script can read it.
import type { components } from "../api/schema";

type TokenResponse = components["schemas"]["TokenResponse"];

export interface SessionState {
  accessToken: string | null;
  organizationId: string | null;
  // Whether the first refresh (on page load) has finished: until then nobody knows.
  settled: boolean;
}

const REFRESH_LOCK = "kai-refresh";
const CSRF_HEADERS = { "X-Requested-With": "kai" };

let state: SessionState = { accessToken: null, organizationId: null, settled: false };
let expiresAt = 0;
const listeners = new Set<() => void>();
let refreshing: Promise<string | null> | null = null;

export function getSession(): SessionState {
  return state;
}

export function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function publish(next: SessionState): void {
  state = next;
  for (const listener of listeners) listener();
}

export function acceptTokens(tokens: TokenResponse): void {
  expiresAt = Date.now() + tokens.expires_in * 1000;
  publish({
    accessToken: tokens.access_token,
    organizationId: tokens.organization_id ?? null,
    settled: true,
  });
}

export function forget(): void {
  expiresAt = 0;
  publish({ accessToken: null, organizationId: null, settled: true });
}

/** A token that is still good for a while, refreshing it first when it is about to expire. */
export async function currentToken(): Promise<string | null> {
  if (refreshing) return refreshing;
  if (!state.accessToken) return null;
  if (Date.now() < expiresAt - 30_000) return state.accessToken;
  return refresh();
}

/**
 * Trade the cookie for a new pair. Tabs take turns (Web Locks): a refresh token works once,
 * and two tabs using the same one at once would end the session for both.
 */
export function refresh(): Promise<string | null> {
  refreshing ??= (async () => {
    try {
      const run = async () => {
        const answer = await fetch("/api/v1/auth/refresh", {
          method: "POST",
          headers: CSRF_HEADERS,
          credentials: "same-origin",
        });
        if (!answer.ok) {
          forget();
          return null;
        }
        acceptTokens((await answer.json()) as TokenResponse);
        return state.accessToken;
      };
      return navigator.locks ? await navigator.locks.request(REFRESH_LOCK, run) : await run();
    } catch {
      // Offline or the server is down: keep what we have, try again on the next request.
      if (!state.settled) publish({ ...state, settled: true });
      return state.accessToken;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

export { CSRF_HEADERS };
