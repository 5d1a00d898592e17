// Background jobs of the organization: what runs, how far along, and a way to stop it.
import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";

import { api, type Schemas } from "../../api/client";
import { unwrap } from "../../api/problem";
import { useCan } from "../../app/me";
import { Field, SelectField } from "../../components/Form";
import { BarFill, JobProgress, isEnded, useJob } from "../../components/JobProgress";
import { useCursorList } from "../../components/lists";
import { QueryState } from "../../components/States";
import { useFormat } from "../../i18n/format";

type Job = Schemas["JobRead"];
type JobStatus = Schemas["JobStatus"];
const STATUSES: JobStatus[] = ["queued", "running", "retrying", "cancelling", "succeeded", "failed", "cancelled"];

export function JobsPage() {
  const { t } = useTranslation("admin");
  const format = useFormat();
  const client = useQueryClient();
  const manage = useCan("jobs:manage");
  const [status, setStatus] = useState<JobStatus | "">("");
  const [kind, setKind] = useState("");
  const [filters, setFilters] = useState<{ status?: JobStatus; kind?: string }>({});
  const jobs = useCursorList(["jobs", "list", filters], async (cursor) =>
    unwrap(await api.GET("/api/v1/jobs", { params: { query: { ...filters, cursor, limit: 50 } } })),
  );
  // Each row's bar reads the job's own query: start it from the list, so only running jobs poll.
  useEffect(() => {
    for (const job of jobs.items) {
      if (!client.getQueryData(["jobs", job.id])) client.setQueryData(["jobs", job.id], job);
    }
  }, [client, jobs.items]);

  function submit(event: FormEvent) {
    event.preventDefault();
    setFilters({ status: status || undefined, kind: kind.trim() || undefined });
  }

  return (
    <div className="stack">
      <form className="inline-form card" onSubmit={submit} aria-label={t("jobs.filters")}>
        <SelectField label={t("jobs.status")} value={status} onChange={(event) => setStatus(event.target.value as JobStatus | "")}>
          <option value="">{t("jobs.anyStatus")}</option>
          {STATUSES.map((value) => (
            <option key={value} value={value}>
              {t(`job.${value}`, { ns: "common" })}
            </option>
          ))}
        </SelectField>
        <Field label={t("jobs.kind")} value={kind} placeholder="catalog.import_csv" onChange={(event) => setKind(event.target.value)} />
        <button type="submit" className="primary">
          {t("audit.apply")}
        </button>
      </form>
      <section aria-labelledby="jobs-heading">
        <h2 id="jobs-heading">{t("jobs.title")}</h2>
        <QueryState query={jobs} isEmpty={() => jobs.items.length === 0} empty={t("jobs.empty")}>
          {() => (
            <>
              <ul className="plain-list job-list">
                {jobs.items.map((job) => (
                  <li key={job.id} className="card">
                    <div className="row">
                      <code className="grow">{job.kind}</code>
                      <span className="muted">{format.dateTime(job.created_at)}</span>
                    </div>
                    {manage ? <JobProgress jobId={job.id} label={t("jobs.progressOf", { kind: job.kind })} /> : <ReadOnlyProgress job={job} />}
                  </li>
                ))}
              </ul>
              {jobs.hasNextPage && (
                <button type="button" onClick={() => void jobs.fetchNextPage()} disabled={jobs.isFetchingNextPage}>
                  {t("loadMore", { ns: "common" })}
                </button>
              )}
            </>
          )}
        </QueryState>
      </section>
    </div>
  );
}

/** A job's bar for people who may watch jobs but not cancel them. */
function ReadOnlyProgress({ job }: { job: Job }) {
  const { t } = useTranslation("admin");
  const live = useJob(job.id).data ?? job;
  const total = live.progress.total ?? 0;
  const fraction = total > 0 ? live.progress.done / total : live.status === "succeeded" ? 1 : 0;
  return (
    <div className="job-progress">
      <div className="row">
        <span>{t(`job.${live.status}`, { ns: "common" })}</span>
        {total > 0 && <span className="muted">{`${live.progress.done} / ${total}`}</span>}
      </div>
      <div className="bar" role="progressbar" aria-label={t("jobs.progressOf", { kind: job.kind })} aria-valuemin={0}
        aria-valuemax={100} aria-valuenow={Math.round(Math.min(1, fraction) * 100)}>
        <BarFill fraction={fraction} />
      </div>
      {isEnded(live) && live.status === "failed" && live.error && <p className="form-problem">{live.error}</p>}
    </div>
  );
}
