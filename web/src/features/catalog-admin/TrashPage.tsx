// /catalog/trash: deleted materials, to restore (under a new code if theirs was taken) or purge.
import { useMutation } from "@tanstack/react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";

import { api, type Schemas } from "../../api/client";
import { ApiError, unwrap } from "../../api/problem";
import { useCan } from "../../app/me";
import { ConfirmDialog } from "../../components/Dialog";
import { Field } from "../../components/Form";
import { Empty, ErrorState, Loading } from "../../components/States";
import { useCursorList } from "../../components/lists";
import { useFormat } from "../../i18n/format";
import { AdminFrame, NotAllowed } from "./AdminFrame";
import { useMaterialsChanged } from "./api";

type Material = Schemas["MaterialRead"];

export default function TrashPage() {
  const { t } = useTranslation("catalogAdmin");
  const canRead = useCan("materials:read");
  return <AdminFrame title={t("trash.title")}>{canRead ? <Trash /> : <NotAllowed />}</AdminFrame>;
}

function Trash() {
  const { t } = useTranslation("catalogAdmin");
  const format = useFormat();
  const canWrite = useCan("materials:write");
  const list = useCursorList(["materials", "trash"], async (cursor) =>
    unwrap(await api.GET("/api/v1/materials", { params: { query: { deleted_only: true, limit: 100, cursor } } })),
  );
  const deleted = list.items;
  const [restoring, setRestoring] = useState<Material | null>(null);
  const [purging, setPurging] = useState<Material | null>(null);

  if (list.isPending) return <Loading />;
  if (list.error && !list.data) return <ErrorState error={list.error} onRetry={() => void list.refetch()} />;
  return (
    <div className="stack">
      <p className="muted">{t("trash.hint")}</p>
      {deleted.length === 0 ? (
        <Empty>{t("trash.empty")}</Empty>
      ) : (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">{t("trash.name")}</th>
                <th scope="col">{t("trash.code")}</th>
                <th scope="col">{t("trash.deletedAt")}</th>
                {canWrite && <th scope="col"><span className="visually-hidden">{t("trash.actions")}</span></th>}
              </tr>
            </thead>
            <tbody>
              {deleted.map((material) => (
                <tr key={material.id}>
                  <td>{material.name}</td>
                  <td>
                    <code>{material.code}</code>
                  </td>
                  <td>{format.dateTime(material.deleted_at!)}</td>
                  {canWrite && (
                    <td>
                      <div className="row">
                        <button type="button" onClick={() => setRestoring(material)} aria-label={t("trash.restoreNamed", { name: material.name })}>
                          {t("trash.restore")}
                        </button>
                        <button type="button" className="danger" onClick={() => setPurging(material)}
                          aria-label={t("trash.purgeNamed", { name: material.name })}>
                          {t("trash.purge")}
                        </button>
                      </div>
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {list.hasNextPage && (
        <div className="row">
          <button type="button" onClick={() => void list.fetchNextPage()} disabled={list.isFetchingNextPage}>
            {t("loadMore")}
          </button>
        </div>
      )}
      {restoring && <RestoreDialog material={restoring} onClose={() => setRestoring(null)} />}
      {purging && <PurgeDialog material={purging} onClose={() => setPurging(null)} />}
    </div>
  );
}

function RestoreDialog({ material, onClose }: { material: Material; onClose: () => void }) {
  const { t } = useTranslation("catalogAdmin");
  const invalidate = useMaterialsChanged();
  const [code, setCode] = useState("");
  const restore = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.POST("/api/v1/materials/{material_id}/restore", {
          params: { path: { material_id: material.id } },
          body: code.trim() ? { code: code.trim() } : {},
        }),
      ),
    onSuccess: async () => {
      await invalidate();
      onClose();
    },
  });
  const codeTaken = restore.error instanceof ApiError && restore.error.kind === "code-taken";
  // Its code was taken meanwhile: ask for another (and keep asking while one is typed).
  const asked = codeTaken || code !== "";
  return (
    <ConfirmDialog
      open
      title={t("trash.restoreTitle", { name: material.name })}
      confirmLabel={t("trash.restore")}
      tone="primary"
      pending={restore.isPending}
      disabled={asked && !code.trim()}
      error={codeTaken ? null : restore.error}
      onConfirm={() => restore.mutate()}
      onClose={onClose}
    >
      {asked ? (
        <Field label={t("trash.newCode")} value={code} required maxLength={100} autoFocus
          onChange={(event) => setCode(event.target.value)}
          error={codeTaken ? t("trash.codeTaken", { code: code.trim() || material.code }) : undefined} />
      ) : (
        <p>{t("trash.restoreConfirm", { code: material.code })}</p>
      )}
    </ConfirmDialog>
  );
}

function PurgeDialog({ material, onClose }: { material: Material; onClose: () => void }) {
  const { t } = useTranslation("catalogAdmin");
  const invalidate = useMaterialsChanged();
  const purge = useMutation({
    mutationFn: async () =>
      unwrap(await api.POST("/api/v1/materials/{material_id}/purge", { params: { path: { material_id: material.id } } })),
    onSuccess: async () => {
      await invalidate();
      onClose();
    },
  });
  return (
    <ConfirmDialog
      open
      title={t("trash.purgeTitle", { name: material.name })}
      confirmLabel={t("trash.purgeForGood")}
      pending={purge.isPending}
      error={purge.error}
      onConfirm={() => purge.mutate()}
      onClose={onClose}
    >
      <p>{t("trash.purgeConfirm")}</p>
    </ConfirmDialog>
  );
}
