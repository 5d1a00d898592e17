// A/B tests between the active version and a challenger: the running test's live figures and
// decision, starting one, promoting or stopping it, past tests and what happened to the models.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import { Link } from "react-router";

import { describe } from "../../api/problem";
import { useCan } from "../../app/me";
import { QueryState } from "../../components/States";
import { useFormat } from "../../i18n/format";
import {
  endExperiment,
  keys,
  startExperiment,
  useExperiments,
  useModelEvents,
  useVersions,
  type Experiment,
  type ModelVersion,
} from "./api";

const VARIANTS = ["champion", "challenger"] as const;
// Half a point of accuracy: the server's default, which the form does not offer to change.
const LOSS_THRESHOLD = 0.005;

function useNumbers(): (id: string) => string {
  const { t } = useTranslation("models");
  const versions = useVersions();
  return (id) => {
    const found = versions.items.find((version) => version.id === id);
    return found ? t("versionNumber", { number: found.number }) : "—";
  };
}

/** A running or ended test: who plays, the figures per variant, and what was decided. */
function ExperimentCard({ experiment }: { experiment: Experiment }) {
  const { t } = useTranslation("models");
  const format = useFormat();
  const canDeploy = useCan("models:deploy");
  const client = useQueryClient();
  const name = useNumbers();
  const act = useMutation({
    mutationFn: (how: "promote" | "stop" | "judge") => endExperiment(experiment.id, how),
    onSuccess: async () => {
      await client.invalidateQueries({ queryKey: keys.all });
    },
  });
  const figures = experiment.figures;
  const running = experiment.status === "running";
  const share = (value: number | null | undefined) => (value === null || value === undefined ? "—" : format.percent(value));
  return (
    <article className="card experiment" aria-label={t("experimentOf", { champion: name(experiment.champion_version_id), challenger: name(experiment.challenger_version_id) })}>
      <header className="page-header">
        <h2>
          {t("experimentOf", { champion: name(experiment.champion_version_id), challenger: name(experiment.challenger_version_id) })}
        </h2>
        <span className={`badge ${running ? "" : experiment.decision === "promoted" ? "good" : ""}`}>
          {running ? t("experimentRunning") : t(`decision.${experiment.decision ?? "kept"}`)}
        </span>
      </header>
      <p className="muted">
        {t(`mode.${experiment.mode}`, { share: format.percent(experiment.challenger_share) })}{" "}
        {t(experiment.auto_promote ? "autoPromoteOn" : "autoPromoteOff")}{" "}
        {t("recognitionsSoFar", { count: figures.recognitions })}
      </p>
      <div className="table-wrap">
        <table className="experiment-figures">
          <caption className="visually-hidden">{t("figuresCaption")}</caption>
          <thead>
            <tr>
              <th scope="col">{t("variant")}</th>
              <th scope="col">{t("recognitionsColumn")}</th>
              <th scope="col">{t("judgedColumn")}</th>
              <th scope="col">{t("accuracy")}</th>
              <th scope="col">{t("unknownShare")}</th>
              <th scope="col">{t("meanConfidence")}</th>
              <th scope="col">{t("medianLatency")}</th>
              {experiment.mode === "shadow" && <th scope="col">{t("agreement")}</th>}
            </tr>
          </thead>
          <tbody>
            {VARIANTS.map((variant) => {
              const row = figures.variants[variant];
              const version = variant === "champion" ? experiment.champion_version_id : experiment.challenger_version_id;
              return (
                <tr key={variant}>
                  <th scope="row">
                    {t(`variant.${variant}`)} (<Link to={`/models/${version}`}>{name(version)}</Link>)
                  </th>
                  <td data-label={t("recognitionsColumn")}>{row ? format.number(row.recognitions) : "0"}</td>
                  <td data-label={t("judgedColumn")}>{row ? format.number(row.judged) : "0"}</td>
                  <td data-label={t("accuracy")}>{share(row?.accuracy)}</td>
                  <td data-label={t("unknownShare")}>{share(row?.unknown_share)}</td>
                  <td data-label={t("meanConfidence")}>{share(row?.mean_confidence)}</td>
                  <td data-label={t("medianLatency")}>{row?.median_latency_ms == null ? "—" : t("milliseconds", { value: format.number(row.median_latency_ms, 1) })}</td>
                  {experiment.mode === "shadow" && <td data-label={t("agreement")}>{share(row?.agreement)}</td>}
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      <p>
        {t("challengerBetter", { probability: format.percent(figures.challenger_better) })}{" "}
        <span className="muted">
          {t("expectedLoss", {
            champion: format.number(figures.loss_choosing_champion * 100, 2),
            challenger: format.number(figures.loss_choosing_challenger * 100, 2),
          })}
        </span>
      </p>
      {figures.recommendation === "promote" && running && (
        <p className="notice" role="status">
          {t("recommendPromote")}
        </p>
      )}
      {experiment.reason && <p className="notice">{experiment.reason}</p>}
      {act.error && (
        <p className="form-problem" role="alert">
          {describe(act.error)}
        </p>
      )}
      {running && canDeploy && (
        <div className="button-row">
          <button type="button" onClick={() => act.mutate("judge")} disabled={act.isPending}>
            {t("judgeNow")}
          </button>
          <button type="button" className="primary" onClick={() => act.mutate("promote")} disabled={act.isPending}>
            {t("promoteChallenger")}
          </button>
          <button type="button" onClick={() => act.mutate("stop")} disabled={act.isPending}>
            {t("stopKeepChampion")}
          </button>
        </div>
      )}
    </article>
  );
}

/** Starting a test: a ready challenger, split or shadow, and the organization's rule. */
function StartForm({ challengers }: { challengers: ModelVersion[] }) {
  const { t } = useTranslation("models");
  const client = useQueryClient();
  const [challenger, setChallenger] = useState(challengers[0]?.id ?? "");
  const [mode, setMode] = useState<"split" | "shadow">("split");
  const [sharePercent, setSharePercent] = useState("50");
  const [autoPromote, setAutoPromote] = useState(false);
  const [minFeedback, setMinFeedback] = useState("100");
  const start = useMutation({
    mutationFn: startExperiment,
    onSuccess: async () => {
      await client.invalidateQueries({ queryKey: keys.all });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    start.mutate({
      challenger_version_id: challenger,
      mode,
      challenger_share: Math.min(99, Math.max(1, Number(sharePercent) || 50)) / 100,
      auto_promote: autoPromote,
      min_feedback: Math.max(1, Math.round(Number(minFeedback)) || 100),
      loss_threshold: LOSS_THRESHOLD,
    });
  };
  return (
    <form className="card stack" onSubmit={submit} aria-labelledby="start-test">
      <h2 id="start-test">{t("startTest")}</h2>
      <p className="muted">{t("startTestIntro")}</p>
      <label>
        {t("challenger")}
        <select value={challenger} onChange={(event) => setChallenger(event.target.value)}>
          {challengers.map((version) => (
            <option key={version.id} value={version.id}>
              {t("versionNumber", { number: version.number })}
            </option>
          ))}
        </select>
      </label>
      <fieldset>
        <legend>{t("modeLegend")}</legend>
        <label>
          <input type="radio" name="mode" checked={mode === "split"} onChange={() => setMode("split")} /> {t("modeSplit")}
        </label>
        <label>
          <input type="radio" name="mode" checked={mode === "shadow"} onChange={() => setMode("shadow")} /> {t("modeShadow")}
        </label>
      </fieldset>
      {mode === "split" && (
        <label>
          {t("sharePercent")}
          <input type="number" min={1} max={99} value={sharePercent} onChange={(event) => setSharePercent(event.target.value)} />
        </label>
      )}
      <label>
        {t("minFeedback")}
        <input type="number" min={1} value={minFeedback} onChange={(event) => setMinFeedback(event.target.value)} />
      </label>
      <label>
        <input type="checkbox" checked={autoPromote} onChange={(event) => setAutoPromote(event.target.checked)} /> {t("autoPromote")}
      </label>
      {start.error && (
        <p className="form-problem" role="alert">
          {describe(start.error)}
        </p>
      )}
      <button type="submit" className="primary" disabled={start.isPending || !challenger}>
        {t("startTestButton")}
      </button>
    </form>
  );
}

function EventsList() {
  const { t } = useTranslation("models");
  const format = useFormat();
  const events = useModelEvents();
  return (
    <section aria-labelledby="model-events">
      <h2 id="model-events">{t("eventsTitle")}</h2>
      <QueryState query={events} isEmpty={(items) => items.length === 0} empty={t("noEvents")}>
        {(items) => (
          <ul className="events-list">
            {items.map((event) => (
              <li key={event.id}>
                <time dateTime={event.created_at}>{format.dateTime(event.created_at)}</time>{" "}
                {t(`event.${event.kind}`, { defaultValue: event.kind, ...event.data })}
              </li>
            ))}
          </ul>
        )}
      </QueryState>
    </section>
  );
}

export function ExperimentsPage() {
  const { t } = useTranslation("models");
  const canDeploy = useCan("models:deploy");
  const experiments = useExperiments();
  const versions = useVersions();
  const challengers = versions.items.filter((version) => version.status === "ready" && !version.active);
  const running = experiments.data?.find((test) => test.status === "running");
  return (
    <section className="stack">
      <header className="page-header">
        <h1>{t("experimentsTitle")}</h1>
      </header>
      <p className="muted">{t("experimentsIntro")}</p>
      {canDeploy && !running && experiments.data && (challengers.length ? <StartForm challengers={challengers} /> : <p className="muted">{t("noChallenger")}</p>)}
      <QueryState query={experiments} isEmpty={(items) => items.length === 0} empty={t("noExperiments")}>
        {(items) => (
          <div className="stack">
            {items.map((experiment) => (
              <ExperimentCard key={experiment.id} experiment={experiment} />
            ))}
          </div>
        )}
      </QueryState>
      <EventsList />
    </section>
  );
}

