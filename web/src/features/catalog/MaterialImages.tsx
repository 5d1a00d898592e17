// A material's images: upload (drop or choose files), make primary, reorder, delete.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useCallback, useEffect, useRef, useState, type DragEvent } from "react";
import { useTranslation } from "react-i18next";

import { api, authedFetch } from "../../api/client";
import { ApiError, describe, isProblem, unwrap } from "../../api/problem";
import { ApiImage } from "../../components/ApiImage";
import { ConfirmDialog } from "../../components/Dialog";
import { Empty, ErrorState, Loading } from "../../components/States";
import { useFormat } from "../../i18n/format";
import { useImages, type MaterialImage } from "./api";

async function upload(materialId: string, file: File): Promise<MaterialImage> {
  const form = new FormData();
  form.append("file", file, file.name);
  const answer = await authedFetch(
    new Request(new URL(`/api/v1/materials/${materialId}/images`, window.location.origin), { method: "POST", body: form }),
  );
  const body: unknown = await answer.json().catch(() => null);
  if (!answer.ok) {
    throw new ApiError(isProblem(body) ? body : { type: "about:blank", title: answer.statusText, status: answer.status });
  }
  return body as MaterialImage;
}

export function MaterialImages({ materialId, name, canWrite }: { materialId: string; name: string; canWrite: boolean }) {
  const { t } = useTranslation("catalog");
  const { number } = useFormat();
  const images = useImages(materialId);
  const client = useQueryClient();
  const input = useRef<HTMLInputElement>(null);
  const [dragging, setDragging] = useState(false);
  const [status, setStatus] = useState("");
  const [deleting, setDeleting] = useState<{ image: MaterialImage; label: string } | null>(null);
  // Stable, so the poll below keeps its rhythm across renders.
  const refresh = useCallback(() => {
    void client.invalidateQueries({ queryKey: ["materials", materialId, "images"] });
    // The catalog's tiles show the material by its thumbnail, which may have changed.
    void client.invalidateQueries({ queryKey: ["catalog", "search"] });
  }, [client, materialId]);

  const uploads = useMutation({
    mutationFn: async (files: File[]) => {
      const failures: string[] = [];
      for (const file of files) {
        try {
          await upload(materialId, file);
        } catch (error) {
          failures.push(`${file.name}: ${describe(error)}`);
        }
      }
      if (failures.length) throw new Error(failures.join(" "));
      return files.length;
    },
    onSuccess: (count) => setStatus(t("images.uploaded", { count })),
    onSettled: refresh,
  });
  const change = useMutation({
    mutationFn: async (changes: { image: MaterialImage; is_primary?: boolean; position?: number }[]) => {
      for (const { image, ...body } of changes) {
        unwrap(
          await api.PATCH("/api/v1/materials/{material_id}/images/{image_id}", {
            params: { path: { material_id: materialId, image_id: image.id } },
            body,
          }),
        );
      }
    },
    onSuccess: () => setStatus(t("images.changed")),
    onSettled: refresh,
  });
  const remove = useMutation({
    mutationFn: async (image: MaterialImage) =>
      unwrap(
        await api.DELETE("/api/v1/materials/{material_id}/images/{image_id}", {
          params: { path: { material_id: materialId, image_id: image.id } },
        }),
      ),
    onSuccess: () => {
      setDeleting(null);
      setStatus(t("images.deleted"));
    },
    onSettled: refresh,
  });

  const list = images.data ?? [];
  const processing = list.some((image) => image.status === "processing");
  // Thumbnails are made in the background: look again until they are.
  useImagesPoll(processing, refresh);

  function move(index: number, by: number) {
    const order = [...list];
    const [moved] = order.splice(index, 1);
    order.splice(index + by, 0, moved!);
    change.mutate(
      order.flatMap((image, position) => (image.position === position ? [] : [{ image, position }])),
    );
  }

  function dropped(event: DragEvent) {
    event.preventDefault();
    setDragging(false);
    const files = [...event.dataTransfer.files].filter((file) => file.type.startsWith("image/") || file.type === "");
    if (files.length) uploads.mutate(files);
  }

  // A failed delete is said in its dialog.
  const problem = uploads.error ?? change.error;
  return (
    <section aria-labelledby="images-heading" className="catalog-images">
      <h2 id="images-heading">{t("images.title")}</h2>
      {canWrite && (
        <div
          className={`catalog-dropzone${dragging ? " dragging" : ""}`}
          data-testid="image-dropzone"
          onDragOver={(event) => {
            event.preventDefault();
            setDragging(true);
          }}
          onDragLeave={() => setDragging(false)}
          onDrop={dropped}
        >
          <p>{t("images.drop")}</p>
          <input
            ref={input}
            id="image-files"
            type="file"
            accept="image/jpeg,image/png,image/webp,image/heic"
            multiple
            className="visually-hidden"
            tabIndex={-1}
            // The button below opens it: to a screen reader one control, not two of one name.
            aria-hidden="true"
            onChange={(event) => {
              const files = [...(event.target.files ?? [])];
              event.target.value = "";
              if (files.length) uploads.mutate(files);
            }}
          />
          <button type="button" onClick={() => input.current?.click()} disabled={uploads.isPending}>
            {uploads.isPending ? t("images.uploading") : t("images.choose")}
          </button>
        </div>
      )}
      <p className="visually-hidden" role="status" aria-live="polite">
        {status}
      </p>
      {problem && (
        <p className="form-problem" role="alert">
          {describe(problem)}
        </p>
      )}
      {images.isPending ? (
        <Loading />
      ) : images.error ? (
        <ErrorState error={images.error} onRetry={() => void images.refetch()} />
      ) : list.length === 0 ? (
        <Empty>{t("images.none")}</Empty>
      ) : (
        <ol className="catalog-image-list">
          {list.map((image, index) => {
            const label = t("images.alt", { name, number: index + 1 });
            return (
              <li key={image.id} className="card">
                <div className="catalog-image-thumb">
                  {image.status === "ready" ? (
                    <ApiImage src={image.urls.thumbnail} alt={label} />
                  ) : (
                    <span className="muted">{t(`images.${image.status}`)}</span>
                  )}
                </div>
                <div className="catalog-image-meta">
                  <span>
                    {image.file_name || t("images.untitled")}
                    {image.is_primary && <span className="badge good">{t("images.primary")}</span>}
                  </span>
                  <small className="muted">
                    {image.width}×{image.height} · {number(image.size_bytes / 1024, 0)} KB
                  </small>
                </div>
                {canWrite && (
                  <div className="row catalog-image-actions">
                    {!image.is_primary && (
                      <button type="button" onClick={() => change.mutate([{ image, is_primary: true }])} disabled={change.isPending}>
                        {t("images.makePrimary")}
                        <span className="visually-hidden"> {label}</span>
                      </button>
                    )}
                    <button
                      type="button"
                      aria-label={t("images.moveUp", { label })}
                      onClick={() => move(index, -1)}
                      disabled={index === 0 || change.isPending}
                    >
                      ↑
                    </button>
                    <button
                      type="button"
                      aria-label={t("images.moveDown", { label })}
                      onClick={() => move(index, 1)}
                      disabled={index === list.length - 1 || change.isPending}
                    >
                      ↓
                    </button>
                    <button
                      type="button"
                      className="danger"
                      aria-label={t("images.delete", { label })}
                      onClick={() => setDeleting({ image, label })}
                    >
                      {t("delete", { ns: "common" })}
                    </button>
                  </div>
                )}
              </li>
            );
          })}
        </ol>
      )}
      <ConfirmDialog
        open={deleting !== null}
        title={t("images.deleteTitle")}
        confirmLabel={t("delete", { ns: "common" })}
        pending={remove.isPending}
        error={remove.error}
        onConfirm={() => deleting && remove.mutate(deleting.image)}
        onClose={() => {
          setDeleting(null);
          remove.reset();
        }}
      >
        {deleting && <p>{t("images.deleteText", { label: deleting.label })}</p>}
      </ConfirmDialog>
    </section>
  );
}

function useImagesPoll(active: boolean, refresh: () => void) {
  useEffect(() => {
    if (!active) return;
    const timer = window.setInterval(refresh, 1500);
    return () => window.clearInterval(timer);
  }, [active, refresh]);
}
