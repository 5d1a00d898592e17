// The models area: versions (train, activate), one version's evaluation, recognition
// settings and the organization's backbones. Loaded on demand, with its chart code.
import { useTranslation } from "react-i18next";
import { NavLink, Route, Routes } from "react-router";

import { NotFoundPage } from "../../app/NotFoundPage";
import { BackbonesPage } from "./BackbonesPage";
import { ComparePage } from "./ComparePage";
import { DriftPage } from "./DriftPage";
import { ExperimentsPage } from "./ExperimentsPage";
import { SettingsPage } from "./SettingsPage";
import { VersionPage } from "./VersionPage";
import { VersionsPage } from "./VersionsPage";
import "./models.css";

function ModelsNav() {
  const { t } = useTranslation("models");
  return (
    <nav className="models-nav" aria-label={t("sections")}>
      <NavLink to="/models" end>
        {t("versionsNav")}
      </NavLink>
      <NavLink to="/models/experiments">{t("experimentsNav")}</NavLink>
      <NavLink to="/models/drift">{t("driftNav")}</NavLink>
      <NavLink to="/models/settings">{t("settingsNav")}</NavLink>
      <NavLink to="/models/backbones">{t("backbonesNav")}</NavLink>
    </nav>
  );
}

export default function ModelsRoutes() {
  return (
    <div className="models">
      <ModelsNav />
      <Routes>
        <Route index element={<VersionsPage />} />
        <Route path="experiments" element={<ExperimentsPage />} />
        <Route path="drift" element={<DriftPage />} />
        <Route path="settings" element={<SettingsPage />} />
        <Route path="backbones" element={<BackbonesPage />} />
        <Route path="compare" element={<ComparePage />} />
        <Route path=":versionId" element={<VersionPage />} />
        <Route path="*" element={<NotFoundPage />} />
      </Routes>
    </div>
  );
}
