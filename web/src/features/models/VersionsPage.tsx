// The organization's model versions: which is active, how well each did, training a new one.
import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { Link, useNavigate } from "react-router";

import { useCan } from "../../app/me";
import { Dialog } from "../../components/Dialog";
import { isEnded, JobProgress, useJob } from "../../components/JobProgress";
import { QueryState } from "../../components/States";
import { useFormat } from "../../i18n/format";
import { ActivateDialog } from "./ActivateDialog";
import { keys, useVersions, type ModelVersion } from "./api";
import { readMetrics } from "./metrics";
import { MAX_COMPARED } from "./ComparePage";
import { TrainForm } from "./TrainForm";

export function StatusBadge({ version }: { version: ModelVersion }) {
  const { t } = useTranslation("models");
  const tone = version.status === "ready" ? "good" : version.status === "failed" ? "bad" : "";
  return <span className={`badge ${tone}`}>{t(`status.${version.status}`)}</span>;
}

export function ActiveBadge() {
  const { t } = useTranslation("models");
  return <span className="badge good active-badge">{t("active")}</span>;
}

/** A version in training: its job's progress; when the job ends, the list is read again. */
function TrainingWatch({ version }: { version: ModelVersion }) {
  const { t } = useTranslation("models");
  const client = useQueryClient();
  const job = useJob(version.job_id);
  const ended = isEnded(job.data);
  useEffect(() => {
    if (ended) void client.invalidateQueries({ queryKey: keys.all });
  }, [ended, client]);
  return (
    <div className="card training-card">
      <h2>{t("trainingVersion", { number: version.number })}</h2>
      {version.job_id ? <JobProgress jobId={version.job_id} /> : <p className="muted">{t("status.training")}</p>}
    </div>
  );
}

/** How the training started here ended, said in a sentence. */
function Outcome({ version }: { version: ModelVersion }) {
  const { t } = useTranslation("models");
  if (version.status === "failed") {
    return (
      <p className="form-problem" role="alert">
        {t("trainingFailed", { number: version.number, reason: version.error ?? t("noReason") })}
      </p>
    );
  }
  return (
    <p className="notice" role="status">
      {t(version.active ? "trainedActive" : "trained", { number: version.number })}{" "}
      <Link to={`/models/${version.id}`}>{t("openVersion", { number: version.number })}</Link>
    </p>
  );
}

export function VersionsPage() {
  const { t } = useTranslation("models");
  const format = useFormat();
  const canTrain = useCan("models:train");
  const canDeploy = useCan("models:deploy");
  const versions = useVersions();
  const [trainOpen, setTrainOpen] = useState(false);
  const [started, setStarted] = useState<string | null>(null);
  const [activating, setActivating] = useState<ModelVersion | null>(null);
  const [compared, setCompared] = useState<string[]>([]);
  const navigate = useNavigate();
  const toggleCompared = (id: string, on: boolean) =>
    setCompared((now) => (on ? [...now, id].slice(-MAX_COMPARED) : now.filter((each) => each !== id)));
  const training = versions.items.filter((version) => version.status === "training");
  const startedVersion = versions.items.find((version) => version.id === started);

  return (
    <section>
      <header className="page-header">
        <h1>{t("versionsTitle")}</h1>
        {canTrain && (
          <button type="button" className="primary" onClick={() => setTrainOpen(true)}>
            {t("train")}
          </button>
        )}
      </header>
      <p className="muted">{t("versionsIntro")}</p>
      <div className="stack training-status" aria-live="polite">
        {training.map((version) => (
          <TrainingWatch key={version.id} version={version} />
        ))}
        {startedVersion && startedVersion.status !== "training" && <Outcome version={startedVersion} />}
      </div>
      <QueryState
        query={{ ...versions, data: versions.data ? versions.items : undefined }}
        isEmpty={(items) => items.length === 0}
        empty={t(canTrain ? "noVersionsTrain" : "noVersions")}
      >
        {(items) => (
          <>
            <div className="table-wrap">
              <table className="versions-table">
                <caption className="visually-hidden">{t("versionsCaption")}</caption>
                <thead>
                  <tr>
                    <th scope="col">
                      <span className="visually-hidden">{t("compareColumn")}</span>
                    </th>
                    <th scope="col">{t("version")}</th>
                    <th scope="col">{t("statusColumn")}</th>
                    <th scope="col">{t("when")}</th>
                    <th scope="col">{t("backbonesColumn")}</th>
                    <th scope="col">{t("accuracy")}</th>
                    <th scope="col">{t("macroF1")}</th>
                    {canDeploy && <th scope="col">{t("actions")}</th>}
                  </tr>
                </thead>
                <tbody>
                  {items.map((version) => {
                    const metrics = readMetrics(version.metrics);
                    return (
                      <tr key={version.id} className={version.active ? "is-active" : undefined}>
                        <td className="compare-cell">
                          {version.status === "ready" && (
                            <input
                              type="checkbox"
                              checked={compared.includes(version.id)}
                              onChange={(event) => toggleCompared(version.id, event.target.checked)}
                              aria-label={t("compareVersion", { number: version.number })}
                            />
                          )}
                        </td>
                        <th scope="row">
                          <Link to={`/models/${version.id}`}>{t("versionNumber", { number: version.number })}</Link>{" "}
                          {version.active && <ActiveBadge />}
                        </th>
                        <td data-label={t("statusColumn")}>
                          <StatusBadge version={version} />
                          {version.status === "failed" && version.error && <small className="row-error">{version.error}</small>}
                        </td>
                        <td data-label={t("when")}>{format.dateTime(version.trained_at ?? version.created_at)}</td>
                        <td data-label={t("backbonesColumn")}>{version.backbones.length ? version.backbones.map((backbone) => backbone.name).join(", ") : String(version.options.backbones ?? "—")}</td>
                        <td data-label={t("accuracy")}>{metrics.accuracy === null ? "—" : format.percent(metrics.accuracy)}</td>
                        <td data-label={t("macroF1")}>{metrics.macroF1 === null ? "—" : format.number(metrics.macroF1, 3)}</td>
                        {canDeploy && (
                          <td className="actions-cell">
                            {version.status === "ready" && !version.active && (
                              <button
                                type="button"
                                onClick={() => setActivating(version)}
                                aria-label={t("activateVersion", { number: version.number })}
                              >
                                {t("activate")}
                              </button>
                            )}
                          </td>
                        )}
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
            <div className="row compare-bar">
              <button type="button" disabled={compared.length < 2} onClick={() => void navigate(`/models/compare?ids=${compared.join(",")}`)}>
                {t("compareSelected", { count: compared.length })}
              </button>
              <small className="muted">{t("compareHint", { max: MAX_COMPARED })}</small>
            </div>
            {versions.hasNextPage && (
              <button type="button" className="wide" onClick={() => void versions.fetchNextPage()} disabled={versions.isFetchingNextPage}>
                {t("common:loadMore")}
              </button>
            )}
          </>
        )}
      </QueryState>
      <Dialog open={trainOpen} title={t("trainTitle")} onClose={() => setTrainOpen(false)}>
        <TrainForm
          onCancel={() => setTrainOpen(false)}
          onStarted={(version) => {
            setStarted(version.id);
            setTrainOpen(false);
          }}
        />
      </Dialog>
      <ActivateDialog version={activating} onClose={() => setActivating(null)} />
    </section>
  );
}
