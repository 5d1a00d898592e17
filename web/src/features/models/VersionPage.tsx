// One model version: how it did on validation (headline, per class, confusion matrix) and
// what produced it (backbones and their weights, the labelled photos, the options).
import { lazy, Suspense, useMemo, useState } from "react";
import { useTranslation } from "react-i18next";
import { Link, useParams } from "react-router";

import { useCan } from "../../app/me";
import { JobProgress } from "../../components/JobProgress";
import { Loading, QueryState } from "../../components/States";
import { useFormat } from "../../i18n/format";
import { ActivateDialog } from "./ActivateDialog";
import { useVersion, type ModelVersion } from "./api";
import { ConfusionTable } from "./ConfusionTable";
import { confusionCells, readMetrics, topConfusions } from "./metrics";
import { ActiveBadge, StatusBadge } from "./VersionsPage";

const ConfusionChart = lazy(() => import("./ConfusionChart"));

/** Who started a training, in words: a person, an API key or the command line. */
export function authorKey(author: string): string {
  if (author.startsWith("user:")) return "byPerson";
  if (author.startsWith("api_key:")) return "byApiKey";
  if (author === "operator:cli") return "byCli";
  return "byOther";
}

export function VersionPage() {
  const { versionId = "" } = useParams();
  const version = useVersion(versionId);
  return <QueryState query={version}>{(data) => <VersionDetail version={data} />}</QueryState>;
}

function Stat({ label, value }: { label: string; value: string }) {
  return (
    <div className="stat card">
      <dt>{label}</dt>
      <dd>{value}</dd>
    </div>
  );
}

function VersionDetail({ version }: { version: ModelVersion }) {
  const { t } = useTranslation("models");
  const format = useFormat();
  const canDeploy = useCan("models:deploy");
  const [activating, setActivating] = useState<ModelVersion | null>(null);
  const metrics = useMemo(() => readMetrics(version.metrics, version.labels.map((label) => label.label)), [version]);
  const cells = useMemo(() => (metrics.matrix ? confusionCells(metrics.labels, metrics.matrix) : []), [metrics]);
  const confusions = topConfusions(cells);
  const score = (value: number | null, digits = 3) => (value === null ? "—" : format.number(value, digits));
  const labelling = version.labelling as { label_by?: unknown; category_level?: unknown };

  return (
    <section className="stack">
      <p className="back-link">
        <Link to="/models">{t("allVersions")}</Link>
      </p>
      <header className="page-header">
        <h1>{t("versionNumber", { number: version.number })}</h1>
        <StatusBadge version={version} />
        {version.active && <ActiveBadge />}
        {canDeploy && version.status === "ready" && !version.active && (
          <button type="button" className="primary" onClick={() => setActivating(version)}>
            {t("activate")}
          </button>
        )}
      </header>
      {version.status === "training" && version.job_id && (
        <div aria-live="polite">
          <JobProgress jobId={version.job_id} />
        </div>
      )}
      {version.status === "failed" && (
        <p className="form-problem" role="alert">
          {t("trainingFailed", { number: version.number, reason: version.error ?? t("noReason") })}
        </p>
      )}

      {version.status === "ready" && (
        <>
          <section aria-labelledby="metrics-heading">
            <h2 id="metrics-heading">{t("validation")}</h2>
            <dl className="stats">
              <Stat label={t("accuracy")} value={metrics.accuracy === null ? "—" : format.percent(metrics.accuracy)} />
              <Stat label={t("macroF1")} value={score(metrics.macroF1)} />
              {metrics.validation?.photos != null && <Stat label={t("photosValidated")} value={format.number(metrics.validation.photos, 0)} />}
              {metrics.validation?.folds != null && <Stat label={t("folds")} value={format.number(metrics.validation.folds, 0)} />}
              {metrics.heldOutUnlike !== null && <Stat label={t("heldOutUnlike")} value={format.percent(metrics.heldOutUnlike)} />}
            </dl>
            {metrics.validation?.method && <p className="muted">{t("validationMethod", { method: metrics.validation.method })}</p>}
          </section>

          <section aria-labelledby="classes-heading">
            <h2 id="classes-heading">{t("perClass")}</h2>
            {metrics.perClass.length === 0 ? (
              <p className="muted">{t("noPerClass")}</p>
            ) : (
              <div className="table-wrap">
                <table className="per-class-table">
                  <caption className="visually-hidden">{t("perClass")}</caption>
                  <thead>
                    <tr>
                      <th scope="col">{t("label")}</th>
                      <th scope="col">{t("precision")}</th>
                      <th scope="col">{t("recall")}</th>
                      <th scope="col">{t("f1")}</th>
                      <th scope="col">{t("support")}</th>
                    </tr>
                  </thead>
                  <tbody>
                    {metrics.perClass.map((row) => (
                      <tr key={row.label}>
                        <th scope="row">{row.label}</th>
                        <td>{score(row.precision)}</td>
                        <td>{score(row.recall)}</td>
                        <td>{score(row.f1)}</td>
                        <td>{row.support === null ? "—" : format.number(row.support, 0)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </section>

          <section aria-labelledby="confusion-heading">
            <h2 id="confusion-heading">{t("confusion")}</h2>
            {metrics.matrix ? (
              <>
                <p className="muted">{t("confusionExplained")}</p>
                <div className="chart-scroll">
                  <Suspense fallback={<Loading />}>
                    <ConfusionChart labels={metrics.labels} cells={cells} title={t("confusionChartLabel")} />
                  </Suspense>
                </div>
                {confusions.length > 0 ? (
                  <ul className="confusions">
                    {confusions.map((cell) => (
                      <li key={`${cell.row}-${cell.column}`}>
                        {t("confusedAs", { count: cell.count, actual: cell.actual, predicted: cell.predicted })}
                      </li>
                    ))}
                  </ul>
                ) : (
                  <p>{t("noConfusions")}</p>
                )}
                <ConfusionTable labels={metrics.labels} matrix={metrics.matrix} />
              </>
            ) : (
              <p className="muted">{t("noMatrix")}</p>
            )}
          </section>
        </>
      )}

      <section aria-labelledby="provenance-heading">
        <h2 id="provenance-heading">{t("provenance")}</h2>
        <dl className="facts">
          <dt>{t("createdAt")}</dt>
          <dd>{format.dateTime(version.created_at)}</dd>
          {version.trained_at && (
            <>
              <dt>{t("trainedAt")}</dt>
              <dd>{format.dateTime(version.trained_at)}</dd>
            </>
          )}
          {version.created_by && (
            <>
              <dt>{t("createdBy")}</dt>
              <dd>{t(authorKey(version.created_by), { author: version.created_by })}</dd>
            </>
          )}
          <dt>{t("labelling")}</dt>
          <dd>
            {labelling.label_by === "material"
              ? t("labelByMaterial")
              : typeof labelling.category_level === "number"
                ? t("labelByLevel", { level: labelling.category_level })
                : t("labelByCategory")}
          </dd>
          <dt>{t("mirrored")}</dt>
          <dd>{version.options.test_time_augmentation ? t("yes") : t("no")}</dd>
          {metrics.fineTuning && (
            <>
              <dt>{t("fineTunedRow")}</dt>
              <dd>
                {t("fineTunedFrom", { network: metrics.fineTuning.network ?? "?", epochs: metrics.fineTuning.epochs ?? "?" })}
                {metrics.fineTuning.heldOutAccuracy !== null && ` · ${t("compare.fineTunedHeldOut")}: ${format.percent(metrics.fineTuning.heldOutAccuracy)}`}
              </dd>
            </>
          )}
          {version.novelty_threshold !== null && (
            <>
              <dt>{t("noveltyThreshold")}</dt>
              <dd>{format.number(version.novelty_threshold, 3)}</dd>
            </>
          )}
          <dt>{t("temperature")}</dt>
          <dd>{format.number(version.temperature, 3)}</dd>
        </dl>
        {version.backbones.length > 0 && (
          <div className="table-wrap">
            <table>
              <caption>{t("backbonesCaption")}</caption>
              <thead>
                <tr>
                  <th scope="col">{t("backbone")}</th>
                  <th scope="col">{t("fingerprint")}</th>
                  <th scope="col">{t("vote")}</th>
                </tr>
              </thead>
              <tbody>
                {version.backbones.map((backbone) => (
                  <tr key={backbone.name}>
                    <th scope="row">{backbone.name}</th>
                    <td>
                      <code className="hash">{backbone.fingerprint}</code>
                    </td>
                    <td>{backbone.vote > 0 ? format.percent(backbone.vote) : t("notConsulted")}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {version.labels.length > 0 && (
          <div className="table-wrap">
            <table>
              <caption>{t("labelsCaption")}</caption>
              <thead>
                <tr>
                  <th scope="col">{t("label")}</th>
                  <th scope="col">{t("photos")}</th>
                </tr>
              </thead>
              <tbody>
                {version.labels.map((label) => (
                  <tr key={label.label}>
                    <th scope="row">{label.label}</th>
                    <td>{format.number(label.photos, 0)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      <ActivateDialog version={activating} onClose={() => setActivating(null)} />
    </section>
  );
}
