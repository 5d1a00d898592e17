// The ways in: one photo, many photos, look-alikes, and the photos waiting for a label.
import { useTranslation } from "react-i18next";
import { NavLink } from "react-router";

export function RecognizeTabs() {
  const { t } = useTranslation("recognize");
  return (
    <nav className="recognize-tabs" aria-label={t("sections")}>
      <NavLink to="/recognize" end>
        {t("tabPhoto")}
      </NavLink>
      <NavLink to="/recognize/batches">{t("tabBatches")}</NavLink>
      <NavLink to="/recognize/search">{t("tabSearch")}</NavLink>
      <NavLink to="/recognize/review">{t("tabReview")}</NavLink>
    </nav>
  );
}
