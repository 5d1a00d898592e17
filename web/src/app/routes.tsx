// Every screen's address. Signed-in screens load on demand: each feature is its own chunk.
import { lazy } from "react";
import { Navigate, type RouteObject } from "react-router";

import { Layout } from "../components/Layout";
import { LoginPage } from "../features/auth/LoginPage";
import { InvitationPage, ResetPasswordPage, SsoConfirmPage, VerifyEmailPage } from "../features/auth/LinkPages";
import { SignupPage } from "../features/auth/SignupPage";
import { NotFoundPage } from "./NotFoundPage";
import { GuestOnly, RequireSession } from "./RequireSession";
import { featureRoutes } from "./featureRoutes";

const Home = lazy(() => import("./HomePage"));

export const routes: RouteObject[] = [
  { path: "/login", element: <GuestOnly><LoginPage /></GuestOnly> },
  { path: "/signup", element: <GuestOnly><SignupPage /></GuestOnly> },
  { path: "/verify-email", element: <VerifyEmailPage /> },
  { path: "/reset-password", element: <ResetPasswordPage /> },
  { path: "/invitations/accept", element: <InvitationPage /> },
  { path: "/sso/confirm", element: <SsoConfirmPage /> },
  {
    element: (
      <RequireSession>
        <Layout />
      </RequireSession>
    ),
    children: [{ index: true, element: <Home /> }, ...featureRoutes, { path: "*", element: <NotFoundPage /> }],
  },
  { path: "/index.html", element: <Navigate to="/" replace /> },
];
