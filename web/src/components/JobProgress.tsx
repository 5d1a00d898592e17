// A background job's progress, polled until it ends: a bar, its state, cancel.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";

import { api, type Schemas } from "../api/client";
import { unwrap } from "../api/problem";
import { ErrorState } from "./States";

export type Job = Schemas["JobRead"];
const ENDED = new Set(["succeeded", "failed", "cancelled"]);

export function isEnded(job: Job | undefined): boolean {
  return job !== undefined && ENDED.has(job.status);
}

/** The job, polled every second while it runs. */
export function useJob(jobId: string | null | undefined) {
  return useQuery({
    queryKey: ["jobs", jobId],
    queryFn: async () => unwrap(await api.GET("/api/v1/jobs/{job_id}", { params: { path: { job_id: jobId! } } })),
    enabled: Boolean(jobId),
    refetchInterval: (query) => (isEnded(query.state.data) ? false : 1000),
  });
}

export function JobProgress({ jobId, label }: { jobId: string; label?: string }) {
  const { t } = useTranslation("common");
  const job = useJob(jobId);
  const client = useQueryClient();
  const cancel = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/jobs/{job_id}/cancel", { params: { path: { job_id: jobId } } })),
    onSuccess: () => client.invalidateQueries({ queryKey: ["jobs", jobId] }),
  });
  if (job.error) return <ErrorState error={job.error} onRetry={() => void job.refetch()} />;
  const data = job.data;
  const total = data?.progress.total ?? 0;
  const done = data?.progress.done ?? 0;
  const fraction = total > 0 ? Math.min(1, done / total) : data?.status === "succeeded" ? 1 : 0;
  const status = data?.status ?? "queued";
  return (
    <div className="job-progress">
      <div className="row">
        <span>{label ?? t(`job.${status}`)}</span>
        <span className="muted">{total > 0 ? `${done} / ${total}` : t(`job.${status}`)}</span>
        {!isEnded(data) && (
          <button type="button" className="link-button" onClick={() => cancel.mutate()} disabled={cancel.isPending}>
            {t("cancel")}
          </button>
        )}
      </div>
      <div
        className="bar"
        role="progressbar"
        aria-label={label ?? t("job.progress")}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={Math.round(fraction * 100)}
      >
        <BarFill fraction={fraction} />
      </div>
      {data?.status === "failed" && data.error && (
        <p className="form-problem" role="alert">
          {data.error}
        </p>
      )}
    </div>
  );
}

/** The filled part of a bar. React sets `style` through the DOM, which the app's CSP allows. */
export function BarFill({ fraction }: { fraction: number }) {
  return <span style={{ width: `${Math.max(0, Math.min(1, fraction)) * 100}%` }} />;
}
