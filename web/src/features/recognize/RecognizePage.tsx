// /recognize: take a photo (or pick one), see what KAI makes of it; the recent recognitions.
// /recognize/:id: one recognition's answer.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useMemo, useState } from "react";
import { useTranslation } from "react-i18next";
import { Link, useNavigate, useParams } from "react-router";

import { ApiError } from "../../api/problem";
import { useCan } from "../../app/me";
import { ApiImage } from "../../components/ApiImage";
import { ErrorState, Loading, QueryState } from "../../components/States";
import { useLoadMoreOnView } from "../../components/lists";
import { useFormat } from "../../i18n/format";
import { recognizePhoto, useRecentRecognitions, useRecognition } from "./api";
import { PhotoPicker } from "./PhotoPicker";
import { RecognitionView } from "./RecognitionView";
import { RecognizeTabs } from "./RecognizeTabs";

/** A local preview of a chosen file, released when it changes. */
export function usePreview(file: File | null): string | null {
  const url = useMemo(() => (file ? URL.createObjectURL(file) : null), [file]);
  useEffect(() => () => (url ? URL.revokeObjectURL(url) : undefined), [url]);
  return url;
}

export function RecognizePage() {
  const { t } = useTranslation("recognize");
  const canCreate = useCan("recognitions:create");
  const client = useQueryClient();
  const navigate = useNavigate();
  const [file, setFile] = useState<File | null>(null);
  const preview = usePreview(file);
  const recognize = useMutation({
    mutationFn: recognizePhoto,
    onSuccess: (recognition) => {
      client.setQueryData(["recognitions", recognition.id], recognition);
      void client.invalidateQueries({ queryKey: ["recognitions", "list"] });
      navigate(`/recognize/${recognition.id}`);
    },
  });
  const noModel = recognize.error instanceof ApiError && recognize.error.kind === "no-trained-model";

  return (
    <div className="recognize-page">
      <header className="page-header">
        <h1>{t("title")}</h1>
      </header>
      <RecognizeTabs />
      {canCreate ? (
        <PhotoPicker
          disabled={recognize.isPending}
          onFiles={([chosen]) => {
            if (!chosen) return;
            setFile(chosen);
            recognize.mutate(chosen);
          }}
        />
      ) : (
        <p className="muted">{t("noPermission")}</p>
      )}
      <div aria-live="polite">
        {recognize.isPending && (
          <div className="recognizing">
            {preview && <img src={preview} alt="" className="recognizing-preview" />}
            <Loading label={t("recognizing")} />
          </div>
        )}
      </div>
      {recognize.error &&
        (noModel ? (
          <div className="state state-error" role="alert">
            <p>{t("noModel")}</p>
          </div>
        ) : (
          <ErrorState error={recognize.error} />
        ))}
      <RecentRecognitions />
    </div>
  );
}

function RecentRecognitions() {
  const { t } = useTranslation("recognize");
  const format = useFormat();
  const list = useRecentRecognitions();
  const more = useLoadMoreOnView(Boolean(list.hasNextPage), () => void list.fetchNextPage());
  return (
    <section aria-labelledby="recent-heading" className="recent">
      <h2 id="recent-heading">{t("recent")}</h2>
      <QueryState query={{ ...list, data: list.data ? list.items : undefined }} empty={t("recentEmpty")} isEmpty={(items) => items.length === 0}>
        {(items) => (
          <>
            <ul className="recent-list">
              {items.map((item) => (
                <li key={item.id}>
                  <Link to={`/recognize/${item.id}`} className="recent-item">
                    {/* Decorative: the link's words say what it is. Hidden as a whole, because
                        ApiImage's placeholder while loading would be an image without a name. */}
                    <span className="recent-thumb" aria-hidden="true">
                      <ApiImage src={item.image_url} alt="" />
                    </span>
                    <span className="recent-text">
                      <strong>{item.unknown ? t("unknownBadge") : item.label}</strong>
                      <span className="muted">
                        {item.confidence !== null && !item.unknown ? `${format.confidence(item.confidence)} · ` : ""}
                        {format.dateTime(item.created_at)}
                      </span>
                    </span>
                  </Link>
                </li>
              ))}
            </ul>
            <div ref={more} />
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

export function RecognitionPage() {
  const { t } = useTranslation("recognize");
  const { recognitionId } = useParams();
  const recognition = useRecognition(recognitionId);
  const canCreate = useCan("recognitions:create");
  return (
    <div className="recognize-page">
      <header className="page-header">
        <h1>{t("resultTitle")}</h1>
        {canCreate && (
          <Link to="/recognize" className="button">
            {t("backToCamera")}
          </Link>
        )}
      </header>
      <RecognizeTabs />
      {recognition.error instanceof ApiError && recognition.error.status === 404 ? (
        <div className="state state-empty">
          <p>{t("notFound")}</p>
        </div>
      ) : (
        <QueryState query={recognition}>{(data) => <RecognitionView recognition={data} />}</QueryState>
      )}
    </div>
  );
}
