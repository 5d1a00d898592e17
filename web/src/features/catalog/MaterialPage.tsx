// One material: its images, its fields and typed properties, its history, look-alikes.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useMemo, useState } from "react";
import { useTranslation } from "react-i18next";
import { Link, useLocation, useNavigate, useParams } from "react-router";

import { api } from "../../api/client";
import { ApiError, unwrap } from "../../api/problem";
import { useCan } from "../../app/me";
import { ApiImage } from "../../components/ApiImage";
import { ConfirmDialog } from "../../components/Dialog";
import { ErrorState, Loading, QueryState } from "../../components/States";
import { useFormat } from "../../i18n/format";
import { categoryPath, etagOf, useCategories, type Category, type Material } from "./api";
import { MaterialForm, type MaterialFields } from "./MaterialForm";
import { MaterialImages } from "./MaterialImages";
import { describeValue } from "./schemaForm";
import { VersionHistory } from "./VersionHistory";
import "./catalog.css";

export default function MaterialPage() {
  const { materialId = "" } = useParams();
  const { t } = useTranslation("catalog");
  const material = useQuery({
    queryKey: ["materials", materialId],
    queryFn: async () =>
      unwrap(
        await api.GET("/api/v1/materials/{material_id}", {
          params: { path: { material_id: materialId }, query: { units: "metric" } },
        }),
      ),
  });
  const categories = useCategories();
  return (
    <div className="catalog-page">
      <nav aria-label={t("breadcrumbs")} className="catalog-breadcrumbs">
        <Link to="/catalog">{t("title")}</Link>
      </nav>
      {material.isPending || categories.isPending ? (
        <Loading />
      ) : material.error || !material.data ? (
        <>
          <h1>{t("material.missing")}</h1>
          <ErrorState error={material.error} onRetry={() => void material.refetch()} />
        </>
      ) : categories.error || !categories.data ? (
        <ErrorState error={categories.error} onRetry={() => void categories.refetch()} />
      ) : (
        <MaterialScreen material={material.data} categories={categories.data} />
      )}
    </div>
  );
}

function MaterialScreen({ material, categories }: { material: Material; categories: Category[] }) {
  const { t } = useTranslation("catalog");
  const canWrite = useCan("materials:write");
  const client = useQueryClient();
  const navigate = useNavigate();
  const location = useLocation();
  const { dateTime } = useFormat();
  const [savedAt, setSavedAt] = useState<string | null>((location.state as { created?: boolean } | null)?.created ? t("material.created") : null);
  const [deleting, setDeleting] = useState(false);
  const byId = useMemo(() => new Map(categories.map((category) => [category.id, category])), [categories]);
  const category = material.category_id ? byId.get(material.category_id) : undefined;

  const save = useMutation({
    mutationFn: async (fields: MaterialFields) =>
      unwrap(
        await api.PATCH("/api/v1/materials/{material_id}", {
          params: {
            path: { material_id: material.id },
            query: { units: "metric" },
            header: { "if-match": etagOf(material) },
          },
          body: fields,
        }),
      ),
    onSuccess: (updated) => {
      client.setQueryData(["materials", material.id], updated);
      void client.invalidateQueries({ queryKey: ["materials", material.id, "versions"] });
      void client.invalidateQueries({ queryKey: ["catalog"] });
      setSavedAt(t("material.saved"));
    },
  });
  const remove = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.DELETE("/api/v1/materials/{material_id}", {
          params: { path: { material_id: material.id }, header: { "if-match": etagOf(material) } },
        }),
      ),
    onSuccess: () => {
      void client.invalidateQueries({ queryKey: ["catalog"] });
      client.removeQueries({ queryKey: ["materials", material.id] });
      navigate("/catalog", { state: { notice: t("material.deletedNotice", { name: material.name }) } });
    },
  });

  return (
    <>
      <div className="page-header">
        <h1>{material.name}</h1>
        <span className="badge">{t(`status.${material.status}`)}</span>
        {canWrite && (
          <button type="button" className="danger" onClick={() => setDeleting(true)}>
            {t("material.delete")}
          </button>
        )}
      </div>
      <p className="muted">
        {material.code}
        {category && <> · {categoryPath(category, byId)}</>} · {t("material.version", { version: material.version, when: dateTime(material.updated_at) })}
      </p>
      <p role="status" aria-live="polite" className="catalog-notice">
        {savedAt}
      </p>
      <div className="catalog-material-layout">
        <div className="stack">
          <MaterialImages materialId={material.id} name={material.name} canWrite={canWrite} />
          <section aria-labelledby="details-heading" className="card">
            <h2 id="details-heading">{t("material.details")}</h2>
            {canWrite ? (
              <>
              <MaterialForm
                key={material.version}
                material={material}
                categories={categories}
                submitLabel={t("material.save")}
                pending={save.isPending}
                error={save.error}
                onSubmit={(fields) => {
                  setSavedAt(null);
                  if (Object.keys(fields).length === 0) setSavedAt(t("material.nothingChanged"));
                  else save.mutate(fields);
                }}
              />
              {save.error instanceof ApiError && save.error.status === 412 && (
                <button
                  type="button"
                  className="catalog-reload"
                  onClick={() => {
                    save.reset();
                    void client.invalidateQueries({ queryKey: ["materials", material.id] });
                  }}
                >
                  {t("material.loadLatest")}
                </button>
              )}
              </>
            ) : (
              <ReadOnlyDetails material={material} category={category} />
            )}
          </section>
        </div>
        <div className="stack">
          <VersionHistory material={material} category={category} canWrite={canWrite} onRestored={setSavedAt} />
          <LookAlikes materialId={material.id} />
        </div>
      </div>
      <ConfirmDialog
        open={deleting}
        title={t("material.deleteTitle")}
        confirmLabel={t("material.delete")}
        pending={remove.isPending}
        error={remove.error}
        onConfirm={() => remove.mutate()}
        onClose={() => setDeleting(false)}
      >
        <p>{t("material.deleteConfirm", { name: material.name })}</p>
      </ConfirmDialog>
    </>
  );
}

function ReadOnlyDetails({ material, category }: { material: Material; category: Category | undefined }) {
  const { t } = useTranslation("catalog");
  const { measure, number, money } = useFormat();
  const yesNo = (value: boolean) => t(value ? "yes" : "no");
  return (
    <dl className="catalog-details">
      <dt>{t("form.description")}</dt>
      <dd>{material.description || "—"}</dd>
      <dt>{t("form.price")}</dt>
      <dd>{material.price && material.currency ? money(material.price, material.currency) : "—"}</dd>
      <dt>{t("form.tags")}</dt>
      <dd>{material.tags.join(", ") || "—"}</dd>
      {(category?.effective_properties ?? []).map((definition) => (
        <div key={definition.key} className="catalog-details-row">
          <dt>{definition.label}</dt>
          <dd>{describeValue(definition, material.properties[definition.key], measure, number, yesNo) || "—"}</dd>
        </div>
      ))}
    </dl>
  );
}

function LookAlikes({ materialId }: { materialId: string }) {
  const { t } = useTranslation("catalog");
  const { percent } = useFormat();
  const similar = useQuery({
    queryKey: ["materials", materialId, "similar"],
    queryFn: async () => {
      try {
        return unwrap(
          await api.GET("/api/v1/materials/{material_id}/similar", {
            params: { path: { material_id: materialId }, query: { k: 8 } },
          }),
        );
      } catch (error) {
        // A material whose photos are not compared yet (a new one) has no look-alikes yet:
        // the empty state says so, where an error would say something went wrong.
        if (error instanceof ApiError && error.kind === "material-has-no-image") return { items: [], timings: {} };
        throw error;
      }
    },
  });
  return (
    <section aria-labelledby="similar-heading" className="card">
      <h2 id="similar-heading">{t("similar.title")}</h2>
      <QueryState query={similar} empty={t("similar.none")} isEmpty={(data) => data.items.length === 0}>
        {(data) => (
          <ul className="catalog-similar">
            {data.items.map((item) => (
              <li key={item.material_id}>
                <Link to={`/catalog/materials/${item.material_id}`}>
                  <ApiImage src={item.image_url} alt="" className="catalog-similar-thumb" />
                  <span>
                    {item.name}
                    <small className="muted"> {item.code}</small>
                  </span>
                  <span className="badge">{t("similar.score", { score: percent(Math.max(0, item.score)) })}</span>
                </Link>
              </li>
            ))}
          </ul>
        )}
      </QueryState>
    </section>
  );
}
