// /catalog/import: a file, checked first (a dry run and its report), then imported as a job.
import { useMutation } from "@tanstack/react-query";
import { useEffect, useState, type DragEvent } from "react";
import { useTranslation } from "react-i18next";

import { describe } from "../../api/problem";
import { useCan } from "../../app/me";
import { JobProgress, isEnded, useJob } from "../../components/JobProgress";
import { FormProblem, TextAreaField } from "../../components/Form";
import { useFormat } from "../../i18n/format";
import { AdminFrame, NotAllowed } from "./AdminFrame";
import { isStarted, postImport, reportOf, useMaterialsChanged, type ImportMode, type ImportReport as Report } from "./api";
import { ImportReport } from "./ImportReport";

const ACCEPTED = ".csv,.json,.zip,text/csv,application/json,application/zip";

export default function ImportPage() {
  const { t } = useTranslation("catalogAdmin");
  const canWrite = useCan("materials:write");
  if (!canWrite) return <AdminFrame title={t("import.title")}><NotAllowed write /></AdminFrame>;
  return (
    <AdminFrame title={t("import.title")}>
      <ImportFlow />
    </AdminFrame>
  );
}

function ImportFlow() {
  const { t } = useTranslation("catalogAdmin");
  const format = useFormat();
  const materialsChanged = useMaterialsChanged();
  const [file, setFile] = useState<File | null>(null);
  const [mode, setMode] = useState<ImportMode>("all_or_nothing");
  const [mapping, setMapping] = useState("");
  const [dragging, setDragging] = useState(false);
  const [jobId, setJobId] = useState<string | null>(null);

  const dryRun = useMutation({
    mutationFn: async () => {
      const answer = await postImport(file!, { dryRun: true, mode, mapping });
      if (isStarted(answer)) throw new Error(t("import.unexpected"));
      return answer;
    },
  });
  const run = useMutation({
    mutationFn: async () => postImport(file!, { dryRun: false, mode, mapping }),
    onSuccess: (answer) => {
      if (isStarted(answer)) setJobId(answer.job.id);
    },
  });
  const job = useJob(jobId);
  const ended = isEnded(job.data);
  const finalReport: Report | null = ended ? reportOf(job.data?.result) : run.data && !isStarted(run.data) ? run.data : null;

  useEffect(() => {
    // The imported materials are new everywhere the catalog is shown.
    if (ended) void materialsChanged();
  }, [ended, materialsChanged]);

  function choose(next: File | null) {
    setFile(next);
    dryRun.reset();
    run.reset();
    setJobId(null);
  }
  function changeMode(next: ImportMode) {
    setMode(next);
    // The report was for the other mode: check again.
    dryRun.reset();
  }
  function drop(event: DragEvent) {
    event.preventDefault();
    setDragging(false);
    const dropped = event.dataTransfer.files[0];
    if (dropped) choose(dropped);
  }

  const report = dryRun.data;
  const importing = jobId !== null && !ended;
  const canImport = report !== undefined && !report.refused && report.valid > 0 && !run.isPending && jobId === null;

  return (
    <div className="stack">
      <section className="card stack" aria-labelledby="file-heading">
        <h2 id="file-heading">{t("import.fileStep")}</h2>
        <div
          className={`drop-zone${dragging ? " dragging" : ""}`}
          onDragOver={(event) => {
            event.preventDefault();
            setDragging(true);
          }}
          onDragLeave={() => setDragging(false)}
          onDrop={drop}
        >
          <p>{t("import.drop")}</p>
          <label className="button">
            {t("import.choose")}
            <input
              type="file"
              className="visually-hidden"
              accept={ACCEPTED}
              onChange={(event) => choose(event.target.files?.[0] ?? null)}
            />
          </label>
          <p aria-live="polite" className="muted">
            {file ? t("import.chosen", { name: file.name, size: format.number(file.size / 1024, 1) }) : t("import.noFile")}
          </p>
        </div>
        <p className="muted">{t("import.columns")}</p>
        <fieldset className="stack">
          <legend>{t("import.mode")}</legend>
          <label className="checkbox-field">
            <input type="radio" name="mode" value="all_or_nothing" checked={mode === "all_or_nothing"}
              onChange={() => changeMode("all_or_nothing")} />
            {t("import.allOrNothing")}
          </label>
          <label className="checkbox-field">
            <input type="radio" name="mode" value="skip_invalid" checked={mode === "skip_invalid"}
              onChange={() => changeMode("skip_invalid")} />
            {t("import.skipInvalid")}
          </label>
        </fieldset>
        <details>
          <summary>{t("import.mappingTitle")}</summary>
          <TextAreaField label={t("import.mapping")} hint={t("import.mappingHint")} rows={3} value={mapping}
            onChange={(event) => {
              setMapping(event.target.value);
              dryRun.reset();
            }} />
        </details>
        <div className="row">
          <button type="button" className="primary" disabled={!file || dryRun.isPending || importing} onClick={() => dryRun.mutate()}>
            {dryRun.isPending ? t("import.checking") : t("import.check")}
          </button>
        </div>
        {dryRun.error && <FormProblem message={describe(dryRun.error)} />}
      </section>

      {report && !jobId && (
        <section className="card stack" aria-label={t("import.checkStep")}>
          <ImportReport report={report} />
          {report.refused && mode === "all_or_nothing" && <p>{t("import.refusedHint")}</p>}
          {!report.refused && (
            <div className="row">
              <button type="button" className="primary" disabled={!canImport} onClick={() => run.mutate()}>
                {t("import.run", { count: report.created + report.updated })}
              </button>
            </div>
          )}
          {run.error && <FormProblem message={describe(run.error)} />}
        </section>
      )}

      {jobId && (
        <section className="card stack" aria-labelledby="progress-heading">
          <h2 id="progress-heading">{t("import.progress")}</h2>
          <JobProgress jobId={jobId} label={ended ? t(`import.job.${job.data?.status}`) : t("import.importing")} />
          {finalReport && <ImportReport report={finalReport} />}
          {ended && (
            <div className="row">
              <button type="button" onClick={() => choose(null)}>
                {t("import.another")}
              </button>
            </div>
          )}
        </section>
      )}
    </div>
  );
}
