// The review queue: the photos most worth a label, one at a time. On a desktop, keys do it
// (1 to 9: KAI's guesses; S: skip); on a phone, large buttons.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useId, useState } from "react";
import { useTranslation } from "react-i18next";

import { api } from "../../api/client";
import { describe, unwrap } from "../../api/problem";
import { useCan } from "../../app/me";
import { ApiImage } from "../../components/ApiImage";
import { QueryState } from "../../components/States";
import { useFormat } from "../../i18n/format";
import { useCategories, useReviewQueue, type ReviewQueue } from "./api";
import { sortedPredictions } from "./RecognitionParts";
import { RecognizeTabs } from "./RecognizeTabs";

type Item = ReviewQueue["queue"][number];

function ReviewItem({ item, pending }: { item: Item; pending: number }) {
  const { t } = useTranslation("recognize");
  const format = useFormat();
  const client = useQueryClient();
  const canLabel = useCan("recognitions:create");
  const selectId = useId();
  const [other, setOther] = useState("");
  const categories = useCategories(canLabel);
  const recognition = item.recognition;
  const guesses = sortedPredictions(recognition.predictions)
    .filter((prediction) => prediction.category_id)
    .slice(0, 9);
  const done = async () => {
    setOther("");
    await client.invalidateQueries({ queryKey: ["review-queue"] });
  };
  const label = useMutation({
    mutationFn: async (categoryId: string) =>
      unwrap(
        await api.POST("/api/v1/recognitions/{recognition_id}/feedback", {
          params: { path: { recognition_id: recognition.id } },
          body: { category_id: categoryId, comment: "" },
        }),
      ),
    onSuccess: done,
  });
  const skip = useMutation({
    mutationFn: async () =>
      unwrap(await api.POST("/api/v1/review-queue/{recognition_id}/skip", { params: { path: { recognition_id: recognition.id } } })),
    onSuccess: done,
  });
  const busy = label.isPending || skip.isPending;

  useEffect(() => {
    if (!canLabel) return undefined;
    const onKey = (event: KeyboardEvent) => {
      const target = event.target as HTMLElement | null;
      if (busy || event.ctrlKey || event.metaKey || event.altKey) return;
      if (target && ["SELECT", "INPUT", "TEXTAREA"].includes(target.tagName)) return;
      const chosen = guesses[Number(event.key) - 1];
      if (chosen?.category_id) {
        event.preventDefault();
        label.mutate(chosen.category_id);
      } else if (event.key.toLowerCase() === "s") {
        event.preventDefault();
        skip.mutate();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [busy, canLabel, guesses, label, skip]);

  return (
    <article className="card review-item stack" aria-label={t("reviewItem", { name: recognition.file_name })}>
      <p className="muted">{t("reviewPending", { count: pending })}</p>
      <figure className="recognition-photo">
        <ApiImage src={recognition.image_url} alt={t("photoAlt", { name: recognition.file_name })} />
      </figure>
      <p>
        <span className="badge">{t(`reviewReason.${item.reason}`)}</span>{" "}
        <span className="muted">{t("madeAt", { date: format.dateTime(recognition.created_at) })}</span>
      </p>
      {canLabel && (
        <>
          <h2>{t("reviewWhatIsIt")}</h2>
          <div className="review-choices">
            {guesses.map((prediction, index) => (
              <button
                key={prediction.label}
                type="button"
                className="review-choice"
                disabled={busy}
                onClick={() => prediction.category_id && label.mutate(prediction.category_id)}
                aria-keyshortcuts={String(index + 1)}
              >
                <kbd>{index + 1}</kbd> {prediction.label} <span className="muted">{format.percent(prediction.confidence)}</span>
              </button>
            ))}
          </div>
          <form
            className="row"
            onSubmit={(event) => {
              event.preventDefault();
              if (other) label.mutate(other);
            }}
          >
            <div className="field grow">
              <label htmlFor={selectId}>{t("reviewSomethingElse")}</label>
              <select id={selectId} value={other} onChange={(event) => setOther(event.target.value)}>
                <option value="">{categories.isPending ? t("common:loading") : t("chooseWhat")}</option>
                {(categories.data ?? []).map((category) => (
                  <option key={category.id} value={category.id}>
                    {`${"\u2003".repeat(category.path.length)}${category.name}`}
                  </option>
                ))}
              </select>
            </div>
            <button type="submit" disabled={busy || !other}>
              {t("reviewSave")}
            </button>
          </form>
          <button type="button" onClick={() => skip.mutate()} disabled={busy} aria-keyshortcuts="S">
            {t("reviewSkip")}
          </button>
          <p className="muted">{t("reviewKeys")}</p>
        </>
      )}
      {(label.error ?? skip.error) && (
        <p className="form-problem" role="alert">
          {describe(label.error ?? skip.error)}
        </p>
      )}
    </article>
  );
}

export function ReviewPage() {
  const { t } = useTranslation("recognize");
  const queue = useReviewQueue();
  return (
    <section className="stack">
      <RecognizeTabs />
      <header className="page-header">
        <h1>{t("reviewTitle")}</h1>
      </header>
      <p className="muted">{t("reviewIntro")}</p>
      <QueryState query={queue} isEmpty={(data) => data.queue.length === 0} empty={t("reviewEmpty")}>
        {(data) => {
          const first = data.queue[0];
          return first ? <ReviewItem key={first.recognition.id} item={first} pending={data.pending} /> : null;
        }}
      </QueryState>
    </section>
  );
}
