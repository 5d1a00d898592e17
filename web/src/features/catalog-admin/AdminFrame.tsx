// The frame of the catalog's management screens: the heading and a row of links between them.
import type { ReactNode } from "react";
import { useTranslation } from "react-i18next";
import { Link, NavLink } from "react-router";

import { useCan } from "../../app/me";
import "./catalog-admin.css";

const SCREENS = [
  { to: "/catalog/categories", key: "nav.categories", write: false },
  { to: "/catalog/import", key: "nav.import", write: true },
  { to: "/catalog/export", key: "nav.export", write: false },
  { to: "/catalog/trash", key: "nav.trash", write: false },
  { to: "/catalog/duplicates", key: "nav.duplicates", write: false },
  { to: "/catalog/settings", key: "nav.settings", write: false },
] as const;

export function AdminFrame({ title, actions, children }: { title: string; actions?: ReactNode; children: ReactNode }) {
  const { t } = useTranslation("catalogAdmin");
  const canWrite = useCan("materials:write");
  return (
    <div className="catalog-admin">
      <nav className="catalog-admin-nav" aria-label={t("nav.label")}>
        <Link to="/catalog" className="catalog-admin-back">
          {t("nav.back")}
        </Link>
        <ul>
          {SCREENS.filter((screen) => canWrite || !screen.write).map((screen) => (
            <li key={screen.to}>
              <NavLink to={screen.to}>{t(screen.key)}</NavLink>
            </li>
          ))}
        </ul>
      </nav>
      <div className="page-header">
        <h1>{title}</h1>
        {actions}
      </div>
      {children}
    </div>
  );
}

/** What a screen shows a person whose role cannot read the catalog (or change it, for `write`). */
export function NotAllowed({ write = false }: { write?: boolean }) {
  const { t } = useTranslation("catalogAdmin");
  return (
    <div className="state state-empty">
      <p>{write ? t("notAllowedWrite") : t("notAllowedRead")}</p>
    </div>
  );
}
