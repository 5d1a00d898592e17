// Drift: whether the photos the active version answers still look like those it was
// validated on, window by window, as a chart and a table; and a check made now.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { lazy, Suspense } from "react";
import { useTranslation } from "react-i18next";

import { describe } from "../../api/problem";
import { useCan } from "../../app/me";
import { Loading, QueryState } from "../../components/States";
import { useFormat } from "../../i18n/format";
import { checkDrift, driftKeys, keys, useDriftWindows, type DriftWindow } from "./api";

const DriftChart = lazy(() => import("./DriftChart"));
// The population stability index from which a window is drift (the server's rule).
const PSI_THRESHOLD = 0.25;

function figure(window: DriftWindow, name: string): number | null {
  const value = window.figures[name];
  return typeof value === "number" ? value : null;
}

export function DriftPage() {
  const { t } = useTranslation("models");
  const format = useFormat();
  const canDeploy = useCan("models:deploy");
  const client = useQueryClient();
  const windows = useDriftWindows();
  const check = useMutation({
    mutationFn: checkDrift,
    onSuccess: async () => {
      await client.invalidateQueries({ queryKey: driftKeys.all });
      await client.invalidateQueries({ queryKey: keys.all });
    },
  });
  const number = (value: number | null, digits = 3) => (value === null ? "—" : format.number(value, digits));
  return (
    <section className="stack">
      <header className="page-header">
        <h1>{t("driftTitle")}</h1>
        {canDeploy && (
          <button type="button" onClick={() => check.mutate()} disabled={check.isPending}>
            {t("driftCheckNow")}
          </button>
        )}
      </header>
      <p className="muted">{t("driftIntro")}</p>
      <div aria-live="polite">
        {check.data && (
          <p className="notice" role="status">
            {check.data.detail}
          </p>
        )}
        {check.error && (
          <p className="form-problem" role="alert">
            {describe(check.error)}
          </p>
        )}
      </div>
      <QueryState query={windows} isEmpty={(items) => items.length === 0} empty={t("driftEmpty")}>
        {(items) => {
          const points = [...items].reverse().map((window) => ({
            when: format.dateTime(window.ended_at),
            confidence: figure(window, "psi_confidence") ?? 0,
            labels: figure(window, "psi_labels") ?? 0,
            unknown: figure(window, "unknown_share") ?? 0,
          }));
          return (
            <>
              <Suspense fallback={<Loading />}>
                <DriftChart points={points} threshold={PSI_THRESHOLD} />
              </Suspense>
              {/* Wider than a phone: a region one can scroll from the keyboard too. */}
              <div className="table-wrap" tabIndex={0} role="region" aria-label={t("driftCaption")}>
                <table>
                  <caption className="visually-hidden">{t("driftCaption")}</caption>
                  <thead>
                    <tr>
                      <th scope="col">{t("driftWindow")}</th>
                      <th scope="col">{t("recognitionsColumn")}</th>
                      <th scope="col">{t("psiConfidence")}</th>
                      <th scope="col">{t("psiLabels")}</th>
                      <th scope="col">{t("unknownShare")}</th>
                      <th scope="col">{t("appearanceP")}</th>
                      <th scope="col">{t("statusColumn")}</th>
                    </tr>
                  </thead>
                  <tbody>
                    {items.map((window) => {
                      const reasons = Array.isArray(window.figures.reasons) ? (window.figures.reasons as string[]) : [];
                      return (
                        <tr key={window.id}>
                          <th scope="row">{format.dateTime(window.ended_at)}</th>
                          <td data-label={t("recognitionsColumn")}>{format.number(window.recognitions)}</td>
                          <td data-label={t("psiConfidence")}>{number(figure(window, "psi_confidence"))}</td>
                          <td data-label={t("psiLabels")}>{number(figure(window, "psi_labels"))}</td>
                          <td data-label={t("unknownShare")}>{figure(window, "unknown_share") === null ? "—" : format.percent(figure(window, "unknown_share") ?? 0)}</td>
                          <td data-label={t("appearanceP")}>{number(figure(window, "projection_p"), 4)}</td>
                          <td data-label={t("statusColumn")}>
                            {window.drifted ? (
                              <span className="badge bad">{t("drifted", { reasons: reasons.map((reason) => t(`driftReason.${reason}`)).join(", ") })}</span>
                            ) : (
                              <span className="badge good">{t("stable")}</span>
                            )}
                          </td>
                        </tr>
                      );
                    })}
                  </tbody>
                </table>
              </div>
            </>
          );
        }}
      </QueryState>
    </section>
  );
}
