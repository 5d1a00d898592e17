// A material's history, newest first, and for those who may edit it, a way back to any earlier
// version: restored as one more version, so nothing in the history is lost.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useCallback, useId, useState } from "react";
import { useTranslation } from "react-i18next";

import { api } from "../../api/client";
import { ApiError, unwrap } from "../../api/problem";
import { ConfirmDialog } from "../../components/Dialog";
import { Empty, ErrorState, Loading } from "../../components/States";
import { useCursorList, useLoadMoreOnView } from "../../components/lists";
import { useFormat } from "../../i18n/format";
import { etagOf, type Category, type Material } from "./api";
import { describeValue } from "./schemaForm";

function shownChange(value: unknown): string {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "object") {
    const record = value as Record<string, unknown>;
    if ("value" in record) return `${String(record.value)}${record.unit ? ` ${String(record.unit)}` : ""}`;
    return Array.isArray(value) ? value.join(", ") : JSON.stringify(value);
  }
  return String(value);
}

/** A version's changes as rows: field, before, after (a property as `properties.<key>`). */
export function changeRows(
  changes: Record<string, unknown>,
  labels: Map<string, string>,
  shown: (key: string, value: unknown) => string = (_key, value) => shownChange(value),
): { field: string; before: string; after: string }[] {
  return Object.entries(changes).map(([field, change]) => {
    const key = field.startsWith("properties.") ? field.slice("properties.".length) : field;
    const pair = (typeof change === "object" && change !== null ? change : { new: change }) as { old?: unknown; new?: unknown };
    return { field: labels.get(key) ?? key, before: shown(key, pair.old), after: shown(key, pair.new) };
  });
}

export function VersionHistory({
  material,
  category,
  canWrite,
  onRestored,
}: {
  material: Material;
  category: Category | undefined;
  canWrite: boolean;
  /** Said on the page once a restore is answered (a restore that changed nothing included). */
  onRestored: (notice: string) => void;
}) {
  const { t } = useTranslation("catalog");
  const { dateTime, measure, number } = useFormat();
  const [restoring, setRestoring] = useState<number | null>(null);
  const headingIds = useId();
  const definitions = new Map((category?.effective_properties ?? []).map((definition) => [definition.key, definition]));
  const yesNo = (value: boolean) => t(value ? "yes" : "no");
  // Stored values are metric; a property's value is shown as the page shows it (unit, system).
  const shown = (key: string, value: unknown) => {
    const definition = definitions.get(key);
    if (!definition || value === null || value === undefined) return shownChange(value);
    return describeValue(definition, value, measure, number, yesNo) || "—";
  };
  const versions = useCursorList(["materials", material.id, "versions"], async (cursor) =>
    unwrap(
      await api.GET("/api/v1/materials/{material_id}/versions", {
        params: { path: { material_id: material.id }, query: { cursor, limit: 50 } },
      }),
    ),
  );
  const { fetchNextPage, isFetchingNextPage } = versions;
  const loadMore = useCallback(() => {
    if (!isFetchingNextPage) void fetchNextPage();
  }, [fetchNextPage, isFetchingNextPage]);
  const more = useLoadMoreOnView(Boolean(versions.hasNextPage), loadMore);
  const labels = new Map<string, string>([
    ...(category?.effective_properties ?? []).map((definition) => [definition.key, definition.label] as [string, string]),
    ...["name", "code", "description", "status", "price", "currency", "tags", "category_id", "manufacturer", "supplier"].map(
      (field) => [field, t(`form.${field === "category_id" ? "category" : field}`)] as [string, string],
    ),
  ]);
  // The API lists the newest first: what changed last is what a person looks for.
  const items = versions.items;
  return (
    <section aria-labelledby="history-heading" className="card">
      <h2 id="history-heading">{t("history.title")}</h2>
      <p className="muted">{t(canWrite ? "history.hintWriter" : "history.hint")}</p>
      {versions.isPending ? (
        <Loading />
      ) : versions.error ? (
        <ErrorState error={versions.error} onRetry={() => void versions.refetch()} />
      ) : items.length === 0 ? (
        <Empty>{t("history.none")}</Empty>
      ) : (
        <ol className="catalog-history">
          {items.map((version) => {
            const rows = changeRows(version.changes, labels, shown);
            const headingId = `${headingIds}-${version.version}`;
            return (
              <li key={version.version}>
                <div className="row">
                  <strong id={headingId}>{t("history.version", { version: version.version })}</strong>
                  <span className="badge">
                    {version.restored_from != null
                      ? t("history.restoredFrom", { version: version.restored_from })
                      : t(`history.action.${version.action}`, { defaultValue: version.action })}
                  </span>
                  <span className="muted">{dateTime(version.changed_at)}</span>
                  {canWrite && version.version < material.version && (
                    <button type="button" className="catalog-restore" aria-describedby={headingId}
                      onClick={() => setRestoring(version.version)}>
                      {t("history.restore")}
                    </button>
                  )}
                </div>
                {rows.length > 0 && version.action !== "created" && (
                  <ul className="catalog-changes">
                    {rows.map((row) => (
                      <li key={row.field}>
                        {t("history.change", { field: row.field, before: row.before, after: row.after })}
                      </li>
                    ))}
                  </ul>
                )}
              </li>
            );
          })}
        </ol>
      )}
      {versions.hasNextPage && (
        <div ref={more}>
          <button type="button" onClick={() => void versions.fetchNextPage()} disabled={versions.isFetchingNextPage}>
            {t("loadMore", { ns: "common" })}
          </button>
        </div>
      )}
      {restoring !== null && (
        <RestoreDialog
          material={material}
          version={restoring}
          onClose={() => setRestoring(null)}
          onRestored={(notice) => {
            setRestoring(null);
            onRestored(notice);
          }}
        />
      )}
    </section>
  );
}

function RestoreDialog({
  material,
  version,
  onClose,
  onRestored,
}: {
  material: Material;
  version: number;
  onClose: () => void;
  onRestored: (notice: string) => void;
}) {
  const { t } = useTranslation("catalog");
  const client = useQueryClient();
  const restore = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.POST("/api/v1/materials/{material_id}/versions/{version}/restore", {
          params: {
            path: { material_id: material.id, version },
            query: { units: "metric" },
            // Restore over the version this person is looking at, not one saved meanwhile.
            header: { "if-match": etagOf(material) },
          },
        }),
      ),
    onSuccess: (updated) => {
      client.setQueryData(["materials", material.id], updated);
      void client.invalidateQueries({ queryKey: ["materials", material.id, "versions"] });
      void client.invalidateQueries({ queryKey: ["catalog"] });
      onRestored(
        updated.version === material.version
          ? t("history.unchanged", { version })
          : t("history.restored", { version, current: updated.version }),
      );
    },
    onError: (error) => {
      // Someone saved meanwhile: show what is there now, to be looked at before trying again.
      if (error instanceof ApiError && error.status === 412) {
        void client.invalidateQueries({ queryKey: ["materials", material.id] });
      }
    },
  });
  const stale = restore.error instanceof ApiError && restore.error.status === 412;
  return (
    <ConfirmDialog
      open
      title={t("history.restoreTitle", { version })}
      confirmLabel={t("history.restoreNow", { version })}
      tone="primary"
      pending={restore.isPending}
      disabled={stale}
      error={restore.error}
      problem={stale ? t("history.restoreStale") : null}
      onConfirm={() => restore.mutate()}
      onClose={onClose}
    >
      <p>{t("history.restoreConfirm", { version })}</p>
    </ConfirmDialog>
  );
}
