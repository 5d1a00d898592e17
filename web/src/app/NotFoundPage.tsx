import { useTranslation } from "react-i18next";
import { Link } from "react-router";

export function NotFoundPage() {
  const { t } = useTranslation();
  return (
    <section className="state state-empty">
      <h1>404</h1>
      <p>{t("notFound")}</p>
      <Link to="/">{t("goHome")}</Link>
    </section>
  );
}
