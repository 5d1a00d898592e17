// Who is signed in, for which organization, allowed to do what.
import { useQuery } from "@tanstack/react-query";
import { useSyncExternalStore } from "react";

import { api } from "../api/client";
import { unwrap } from "../api/problem";
import { getSession, subscribe } from "../auth/session";

export function useSession() {
  return useSyncExternalStore(subscribe, getSession);
}

export function useMe() {
  const session = useSession();
  return useQuery({
    queryKey: ["me", session.organizationId],
    queryFn: async () => unwrap(await api.GET("/api/v1/me")),
    enabled: session.accessToken !== null,
    staleTime: 60_000,
  });
}

/** Whether the signed-in person may do `permission` in the current organization. */
export function useCan(permission: string): boolean {
  const me = useMe();
  return me.data?.permissions.includes(permission) ?? false;
}
