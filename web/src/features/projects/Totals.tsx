// What a project's chosen materials come to, per currency, and what is left out of it.
import { useTranslation } from "react-i18next";

import { useFormat } from "../../i18n/format";
import type { Project } from "./api";

export function Totals({ project, compact = false }: { project: Project; compact?: boolean }) {
  const { t } = useTranslation("projects");
  const format = useFormat();
  if (project.totals.length === 0 && (compact || project.material_count === 0)) return null;
  return (
    <div className={compact ? "totals totals-compact" : "totals"} aria-live="polite">
      {project.totals.length > 0 ? (
        <dl>
          {project.totals.map((total) => (
            <div key={total.currency}>
              <dt>{t("totalIn", { currency: total.currency })}</dt>
              <dd>{format.money(total.amount, total.currency)}</dd>
            </div>
          ))}
        </dl>
      ) : (
        <p className="muted">{t("noTotal")}</p>
      )}
      {!compact && project.materials_without_total > 0 && (
        <p className="muted small">{t("withoutTotal", { count: project.materials_without_total })}</p>
      )}
    </div>
  );
}
