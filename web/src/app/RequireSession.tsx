// Screens behind a login: wait for the first refresh, then show them or send to /login.
import type { ReactNode } from "react";
import { Navigate, useLocation } from "react-router";

import { Loading } from "../components/States";
import { useSession } from "./me";

export function RequireSession({ children }: { children: ReactNode }) {
  const session = useSession();
  const location = useLocation();
  if (!session.settled) return <Loading />;
  if (!session.accessToken) return <Navigate to="/login" replace state={{ from: location.pathname + location.search }} />;
  return <>{children}</>;
}

export function GuestOnly({ children }: { children: ReactNode }) {
  const session = useSession();
  if (!session.settled) return <Loading />;
  if (session.accessToken) return <Navigate to="/" replace />;
  return <>{children}</>;
}
