// The organization's administration: one tab per concern, each shown only to people whose
// role opens it; a direct visit to a closed tab shows nothing of the organization.
import type { ComponentType } from "react";
import { useTranslation } from "react-i18next";
import { NavLink, Route, Routes } from "react-router";

import { useMe } from "../../app/me";
import { Empty, ErrorState, Loading } from "../../components/States";
import { ApiKeysPage } from "./ApiKeysPage";
import { AuditPage } from "./AuditPage";
import { JobsPage } from "./JobsPage";
import { MembersPage } from "./MembersPage";
import { RolesPage } from "./RolesPage";
import { SsoPage } from "./SsoPage";
import { TeamsPage } from "./TeamsPage";
import { NoAccess } from "./ui";
import "./admin.css";

interface Tab {
  path: string;
  label: string;
  /** Any one of these opens the tab. */
  permissions: string[];
  Component: ComponentType;
}

export const TABS: Tab[] = [
  { path: "", label: "tab.members", permissions: ["members:read", "members:manage"], Component: MembersPage },
  { path: "teams", label: "tab.teams", permissions: ["teams:manage"], Component: TeamsPage },
  { path: "roles", label: "tab.roles", permissions: ["roles:manage"], Component: RolesPage },
  { path: "api-keys", label: "tab.apiKeys", permissions: ["api_keys:manage"], Component: ApiKeysPage },
  { path: "sso", label: "tab.sso", permissions: ["sso:manage"], Component: SsoPage },
  { path: "audit", label: "tab.audit", permissions: ["audit:read"], Component: AuditPage },
  { path: "jobs", label: "tab.jobs", permissions: ["jobs:read", "jobs:manage"], Component: JobsPage },
];

export default function AdminRoutes() {
  const { t } = useTranslation("admin");
  const me = useMe();
  if (me.isPending) return <Loading />;
  if (me.error || !me.data) return <ErrorState error={me.error} onRetry={() => void me.refetch()} />;
  const held = new Set(me.data.permissions);
  const opens = (tab: Tab) => tab.permissions.some((permission) => held.has(permission));
  const visible = TABS.filter(opens);
  return (
    <div className="admin">
      <div className="page-header">
        <h1>{t("title")}</h1>
      </div>
      {visible.length > 0 && (
        <nav className="admin-tabs" aria-label={t("sections")}>
          <ul>
            {visible.map((tab) => (
              <li key={tab.path}>
                <NavLink to={tab.path ? `/admin/${tab.path}` : "/admin"} end>
                  {t(tab.label)}
                </NavLink>
              </li>
            ))}
          </ul>
        </nav>
      )}
      <Routes>
        {TABS.map((tab) => {
          const element = opens(tab) ? <tab.Component /> : <NoAccess />;
          return tab.path ? (
            <Route key={tab.path} path={tab.path} element={element} />
          ) : (
            <Route key="index" index element={element} />
          );
        })}
        <Route path="*" element={<Empty>{t("notFound", { ns: "common" })}</Empty>} />
      </Routes>
    </div>
  );
}
