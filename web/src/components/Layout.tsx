// The frame of every signed-in screen: navigation (a side bar on desktop, a bottom bar on a
// phone), the organization switcher and the account menu.
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { Suspense } from "react";
import { useTranslation } from "react-i18next";
import { NavLink, Outlet, useNavigate } from "react-router";

import { api } from "../api/client";
import { describe, unwrap } from "../api/problem";
import { useMe } from "../app/me";
import { acceptTokens, forget } from "../auth/session";
import { Loading } from "./States";

const SECTIONS = [
  { to: "/catalog", key: "nav.catalog", icon: "▦", permission: "materials:read" },
  { to: "/recognize", key: "nav.recognize", icon: "◎", permission: "recognitions:create" },
  { to: "/projects", key: "nav.projects", icon: "▤", permission: "recognitions:read" },
  { to: "/models", key: "nav.models", icon: "◇", permission: "models:read" },
  { to: "/admin", key: "nav.admin", icon: "⚙", permission: "members:read" },
] as const;

export function Layout() {
  const { t } = useTranslation();
  const me = useMe();
  const permissions = me.data?.permissions ?? [];
  const sections = SECTIONS.filter((section) => permissions.includes(section.permission));
  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        {t("skipToContent")}
      </a>
      <header className="topbar">
        <NavLink to="/" className="brand" aria-label="KAI">
          <img src="/icon.svg" alt="" width={28} height={28} />
          <span>KAI</span>
        </NavLink>
        <OrganizationSwitcher />
        <AccountMenu />
      </header>
      <nav className="sidebar" aria-label={t("menu")}>
        <ul>
          {sections.map((section) => (
            <li key={section.to}>
              <NavLink to={section.to}>
                <span className="nav-icon" aria-hidden="true">
                  {section.icon}
                </span>
                <span>{t(section.key)}</span>
              </NavLink>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main" className="content" tabIndex={-1}>
        <Suspense fallback={<Loading />}>
          <Outlet />
        </Suspense>
      </main>
    </div>
  );
}

function OrganizationSwitcher() {
  const { t } = useTranslation();
  const me = useMe();
  const client = useQueryClient();
  const navigate = useNavigate();
  const memberships = useQuery({
    queryKey: ["me", "organizations"],
    queryFn: async () => unwrap(await api.GET("/api/v1/me/organizations", { params: { query: { limit: 200 } } })),
    enabled: me.data?.kind === "user",
  });
  const current = me.data?.organization?.id ?? "";
  const items = memberships.data?.items ?? [];
  if (items.length <= 1) {
    return <span className="org-name">{me.data?.organization?.name}</span>;
  }
  return (
    <label className="org-switcher">
      <span className="visually-hidden">{t("nav.switchOrganization")}</span>
      <select
        value={current}
        onChange={async (event) => {
          try {
            acceptTokens(
              unwrap(
                await api.POST("/api/v1/auth/switch-organization", {
                  body: { organization_id: event.target.value },
                  headers: { "X-Requested-With": "kai" },
                }),
              ),
            );
            client.clear();
            navigate("/");
          } catch (error) {
            window.alert(describe(error));
          }
        }}
      >
        {items.map((membership) => (
          <option key={membership.organization.id} value={membership.organization.id}>
            {membership.organization.name}
          </option>
        ))}
      </select>
    </label>
  );
}

function AccountMenu() {
  const { t } = useTranslation();
  const me = useMe();
  const client = useQueryClient();
  const navigate = useNavigate();
  return (
    <div className="account-menu">
      <NavLink to="/account" className="account-link">
        {me.data?.user?.name ?? t("nav.account")}
      </NavLink>
      <button
        type="button"
        className="link-button"
        onClick={async () => {
          await api.POST("/api/v1/auth/logout");
          forget();
          client.clear();
          navigate("/login");
        }}
      >
        {t("nav.logout")}
      </button>
    </div>
  );
}
