// Versions side by side (`/models/compare?ids=a,b`): the headline figures, what each was trained
// with, and every label's F1 as a table and as grouped bars; the best of each row is marked.
import { lazy, Suspense, useMemo } from "react";
import { useTranslation } from "react-i18next";
import { Link, useSearchParams } from "react-router";

import { ErrorState, Loading } from "../../components/States";
import { useFormat } from "../../i18n/format";
import { useVersionsNamed, type ModelVersion } from "./api";
import { compareVersions, f1ChartRows, parseIds, type ComparedRow } from "./compare";
import { ActiveBadge, StatusBadge } from "./VersionsPage";

const CompareChart = lazy(() => import("./CompareChart"));
export const MAX_COMPARED = 4;

const PERCENT_ROWS = new Set(["accuracy", "heldOutUnlike", "fineTunedHeldOut"]);

export function ComparePage() {
  const { t } = useTranslation("models");
  const [params] = useSearchParams();
  const ids = parseIds(params.get("ids")).slice(0, MAX_COMPARED);
  const queries = useVersionsNamed(ids);
  const failed = queries.find((query) => query.error);
  if (ids.length < 2) {
    return (
      <section>
        <h1>{t("compareTitle")}</h1>
        <p className="muted">{t("compareChoose")}</p>
        <Link to="/models">{t("versionsNav")}</Link>
      </section>
    );
  }
  if (failed) return <ErrorState error={failed.error} onRetry={() => queries.forEach((query) => void query.refetch())} />;
  if (queries.some((query) => !query.data)) return <Loading />;
  return <Compared versions={queries.map((query) => query.data as ModelVersion)} />;
}

function Compared({ versions }: { versions: ModelVersion[] }) {
  const { t } = useTranslation("models");
  const format = useFormat();
  const comparison = useMemo(() => compareVersions(versions), [versions]);
  const names = versions.map((version) => t("versionNumber", { number: version.number }));
  const show = (row: ComparedRow, value: number | null) => {
    if (value === null) return "—";
    if (PERCENT_ROWS.has(row.key)) return format.percent(value);
    if (row.key === "macroF1") return format.number(value, 3);
    if (row.key === "fineTuningSeconds") return t("seconds", { seconds: format.number(value, 0) });
    return format.number(value, 0);
  };
  return (
    <section>
      <header className="page-header">
        <h1>{t("compareTitle")}</h1>
      </header>
      <div className="table-wrap">
        <table className="compare-table">
          <caption className="visually-hidden">{t("compareTitle")}</caption>
          <thead>
            <tr>
              <td />
              {versions.map((version, index) => (
                <th scope="col" key={version.id}>
                  <Link to={`/models/${version.id}`}>{names[index]}</Link> {version.active && <ActiveBadge />}
                  <div>
                    <StatusBadge version={version} />
                  </div>
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            <tr>
              <th scope="row">{t("when")}</th>
              {versions.map((version) => (
                <td key={version.id}>{format.dateTime(version.trained_at ?? version.created_at)}</td>
              ))}
            </tr>
            <tr>
              <th scope="row">{t("backbonesColumn")}</th>
              {versions.map((version) => (
                <td key={version.id}>{version.backbones.map((backbone) => backbone.name).join(", ") || "—"}</td>
              ))}
            </tr>
            <tr>
              <th scope="row">{t("fineTunedRow")}</th>
              {comparison.metrics.map((metrics, index) => (
                <td key={versions[index]?.id ?? index}>
                  {metrics.fineTuning ? t("fineTunedFrom", { network: metrics.fineTuning.network ?? "?", epochs: metrics.fineTuning.epochs ?? "?" }) : t("no")}
                </td>
              ))}
            </tr>
            <tr>
              <th scope="row">{t("mirrored")}</th>
              {versions.map((version) => (
                <td key={version.id}>{version.options.test_time_augmentation ? t("yes") : t("no")}</td>
              ))}
            </tr>
            {comparison.rows.map((row) => (
              <tr key={row.key}>
                <th scope="row">{t(`compare.${row.key}`)}</th>
                {row.values.map((value, index) => (
                  <td key={versions[index]?.id ?? index} className={row.best.includes(index) ? "best" : undefined}>
                    {show(row, value)}
                    {row.best.includes(index) && <span className="visually-hidden"> {t("compareBest")}</span>}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {comparison.labels.length > 0 && (
        <>
          <h2>{t("compareF1")}</h2>
          <div className="table-wrap">
            <table className="compare-table">
              <caption className="visually-hidden">{t("compareF1")}</caption>
              <thead>
                <tr>
                  <th scope="col">{t("label")}</th>
                  {names.map((name) => (
                    <th scope="col" key={name}>
                      {name}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {comparison.labels.map((label) => (
                  <tr key={label}>
                    <th scope="row">{label}</th>
                    {(comparison.f1[label] ?? []).map((value, index) => (
                      <td key={versions[index]?.id ?? index}>{value === null ? "—" : format.number(value, 3)}</td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <Suspense fallback={<Loading />}>
            <CompareChart rows={f1ChartRows(comparison, names)} names={names} />
          </Suspense>
        </>
      )}
    </section>
  );
}
