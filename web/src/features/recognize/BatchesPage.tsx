// /recognize/batches: many photos (or zips of them) at once, and the batches before.
// /recognize/batches/:id: one batch's live progress, its results, the CSV.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { Link, useNavigate, useParams } from "react-router";

import { useCan } from "../../app/me";
import { FormProblem, formErrors } from "../../components/Form";
import { BarFill } from "../../components/JobProgress";
import { QueryState } from "../../components/States";
import { useFormat } from "../../i18n/format";
import { BATCH_ENDED, downloadResultsCsv, startBatch, useBatch, useBatchResults, useBatches, type Batch } from "./api";
import { PhotoPicker } from "./PhotoPicker";
import { RecognizeTabs } from "./RecognizeTabs";

export function BatchesPage() {
  const { t } = useTranslation("recognize");
  const canCreate = useCan("recognitions:create");
  const client = useQueryClient();
  const navigate = useNavigate();
  const [files, setFiles] = useState<File[]>([]);
  const start = useMutation({
    mutationFn: startBatch,
    onSuccess: (batch) => {
      client.setQueryData(["recognition-batches", batch.id], batch);
      void client.invalidateQueries({ queryKey: ["recognition-batches", "list"] });
      navigate(`/recognize/batches/${batch.id}`);
    },
  });
  const { message } = formErrors(start.error);
  return (
    <div className="recognize-page">
      <header className="page-header">
        <h1>{t("batchesTitle")}</h1>
      </header>
      <RecognizeTabs />
      {canCreate && (
        <section className="card stack batch-start">
          <p>{t("batchesIntro")}</p>
          <PhotoPicker multiple accept="image/*,.zip,application/zip" disabled={start.isPending} onFiles={(chosen) => setFiles((before) => [...before, ...chosen])} />
          {files.length > 0 && (
            <div className="stack">
              <p aria-live="polite">{t("filesChosen", { count: files.length })}</p>
              <ul className="chosen-files">
                {files.map((file, index) => (
                  <li key={`${file.name}-${index}`}>{file.name}</li>
                ))}
              </ul>
              <div className="row">
                <button type="button" className="primary" disabled={start.isPending} onClick={() => start.mutate(files)}>
                  {t("startBatch", { count: files.length })}
                </button>
                <button type="button" disabled={start.isPending} onClick={() => setFiles([])}>
                  {t("clearFiles")}
                </button>
              </div>
            </div>
          )}
          <FormProblem message={message} />
        </section>
      )}
      <EarlierBatches />
    </div>
  );
}

function BatchStatus({ batch }: { batch: Batch }) {
  const { t } = useTranslation("recognize");
  const tone = batch.status === "succeeded" ? " good" : batch.status === "failed" ? " bad" : "";
  return <span className={`badge${tone}`}>{t(`batchStatus.${batch.status}`)}</span>;
}

function EarlierBatches() {
  const { t } = useTranslation("recognize");
  const format = useFormat();
  const list = useBatches();
  return (
    <section aria-labelledby="batches-heading">
      <h2 id="batches-heading">{t("earlierBatches")}</h2>
      <QueryState query={{ ...list, data: list.data ? list.items : undefined }} empty={t("batchesEmpty")} isEmpty={(items) => items.length === 0}>
        {(items) => (
          <>
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">{t("created")}</th>
                    <th scope="col">{t("photos")}</th>
                    <th scope="col">{t("status")}</th>
                  </tr>
                </thead>
                <tbody>
                  {items.map((batch) => (
                    <tr key={batch.id}>
                      <td>
                        <Link to={`/recognize/batches/${batch.id}`}>{format.dateTime(batch.created_at)}</Link>
                      </td>
                      <td>{format.number(batch.total, 0)}</td>
                      <td>
                        <BatchStatus batch={batch} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            {list.hasNextPage && (
              <button type="button" onClick={() => void list.fetchNextPage()} disabled={list.isFetchingNextPage}>
                {t("common:loadMore")}
              </button>
            )}
          </>
        )}
      </QueryState>
    </section>
  );
}

export function BatchPage() {
  const { t } = useTranslation("recognize");
  const format = useFormat();
  const { batchId = "" } = useParams();
  const batch = useBatch(batchId);
  const client = useQueryClient();
  const status = batch.data?.status;
  useEffect(() => {
    // The list of batches shows each one's status: it is out of date once this one ends.
    if (status && BATCH_ENDED.has(status)) void client.invalidateQueries({ queryKey: ["recognition-batches", "list"] });
  }, [status, client]);
  return (
    <div className="recognize-page">
      <header className="page-header">
        <h1>{batch.data ? t("batchTitle", { date: format.dateTime(batch.data.created_at) }) : t("batch")}</h1>
        <Link to="/recognize/batches" className="button">
          {t("common:back")}
        </Link>
      </header>
      <RecognizeTabs />
      <QueryState query={batch}>
        {(data) => (
          <div className="stack">
            <BatchProgress batch={data} />
            <BatchResults batch={data} />
          </div>
        )}
      </QueryState>
    </div>
  );
}

function BatchProgress({ batch }: { batch: Batch }) {
  const { t } = useTranslation("recognize");
  const fraction = batch.total > 0 ? (batch.done + batch.failed) / batch.total : batch.status === "succeeded" ? 1 : 0;
  return (
    <section className="card batch-progress">
      <div className="row spread">
        <span aria-live="polite" className="batch-progress-text">
          <BatchStatus batch={batch} /> {t("progress", { done: batch.done, total: batch.total })}
        </span>
        {batch.failed > 0 && <span className="muted">{t("failedCount", { count: batch.failed })}</span>}
      </div>
      <div
        className="bar"
        role="progressbar"
        aria-label={t("common:job.progress")}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={Math.round(Math.min(1, fraction) * 100)}
      >
        <BarFill fraction={fraction} />
      </div>
    </section>
  );
}

function BatchResults({ batch }: { batch: Batch }) {
  const { t } = useTranslation("recognize");
  const format = useFormat();
  const list = useBatchResults(batch.id);
  // Asked again whenever the batch moves on, so the table follows the progress.
  const progress = `${batch.status}-${batch.done + batch.failed}`;
  const { refetch } = list;
  useEffect(() => {
    void refetch();
  }, [progress, refetch]);
  const download = useMutation({ mutationFn: () => downloadResultsCsv(batch.id) });
  const ended = BATCH_ENDED.has(batch.status);
  return (
    <section aria-labelledby="results-heading">
      <div className="row spread">
        <h2 id="results-heading">{t("results")}</h2>
        <button type="button" onClick={() => download.mutate()} disabled={!ended || download.isPending}>
          {download.isPending ? t("downloading") : t("downloadCsv")}
        </button>
      </div>
      <FormProblem message={formErrors(download.error).message} />
      <QueryState query={{ ...list, data: list.data ? list.items : undefined }} empty={t("resultsEmpty")} isEmpty={(items) => items.length === 0}>
        {(items) => (
          <>
            <div className="table-wrap">
              <table className="batch-results">
                <thead>
                  <tr>
                    <th scope="col">{t("position")}</th>
                    <th scope="col">{t("file")}</th>
                    <th scope="col">{t("status")}</th>
                    <th scope="col">{t("label")}</th>
                    <th scope="col">{t("confidence")}</th>
                    <th scope="col">{t("mostSimilar")}</th>
                  </tr>
                </thead>
                <tbody>
                  {items.map((row) => (
                    <tr key={row.position}>
                      <td>{row.position}</td>
                      <td className="file-cell">
                        {row.recognition_id ? <Link to={`/recognize/${row.recognition_id}`}>{row.file_name}</Link> : row.file_name}
                      </td>
                      <td>
                        {t(`resultStatus.${row.status}`)}
                        {row.error && <small className="field-error">{row.error}</small>}
                      </td>
                      <td>{row.unknown ? <span className="badge bad">{t("unknownBadge")}</span> : (row.label ?? "")}</td>
                      <td>{row.confidence !== null ? format.confidence(row.confidence) : ""}</td>
                      <td>
                        {row.similar_material_id ? (
                          <Link to={`/catalog/materials/${row.similar_material_id}`}>
                            {row.similar_name}
                            {row.similar_score !== null ? ` (${format.percent(Math.max(0, row.similar_score))})` : ""}
                          </Link>
                        ) : (
                          ""
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            {list.hasNextPage && (
              <button type="button" onClick={() => void list.fetchNextPage()} disabled={list.isFetchingNextPage}>
                {t("common:loadMore")}
              </button>
            )}
          </>
        )}
      </QueryState>
    </section>
  );
}
