// A person's own account: profile and preferences, security, organizations.
import { useTranslation } from "react-i18next";
import { NavLink, Route, Routes } from "react-router";

import { NotFoundPage } from "../../app/NotFoundPage";
import { CreateOrganizationPage, OrganizationsPage } from "./OrganizationsPage";
import { ProfilePage } from "./ProfilePage";
import { SecurityPage } from "./SecurityPage";
import "./account.css";

export default function AccountRoutes() {
  return (
    <Routes>
      <Route index element={<ProfilePage />} />
      <Route path="security" element={<SecurityPage />} />
      <Route path="organizations" element={<OrganizationsPage />} />
      <Route path="organizations/new" element={<CreateOrganizationPage />} />
      <Route path="*" element={<NotFoundPage />} />
    </Routes>
  );
}

/** The account's sections, as tabs under the screen's heading. */
export function AccountNav() {
  const { t } = useTranslation("account");
  return (
    <nav className="account-tabs" aria-label={t("tabs.label")}>
      <NavLink to="/account" end>
        {t("tabs.profile")}
      </NavLink>
      <NavLink to="/account/security">{t("tabs.security")}</NavLink>
      <NavLink to="/account/organizations">{t("tabs.organizations")}</NavLink>
    </nav>
  );
}
