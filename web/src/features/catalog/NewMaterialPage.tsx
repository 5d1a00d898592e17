// Creating a material: a category first, then the form its schema generates.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { Link, useNavigate, useSearchParams } from "react-router";

import { api } from "../../api/client";
import { unwrap } from "../../api/problem";
import { QueryState } from "../../components/States";
import { useCategories } from "./api";
import { MaterialForm, type MaterialFields } from "./MaterialForm";
import "./catalog.css";

export default function NewMaterialPage() {
  const { t } = useTranslation("catalog");
  const categories = useCategories();
  const navigate = useNavigate();
  const client = useQueryClient();
  const [search] = useSearchParams();
  const create = useMutation({
    mutationFn: async (fields: MaterialFields) =>
      unwrap(
        await api.POST("/api/v1/materials", {
          params: { query: { units: "metric" } },
          body: {
            ...fields,
            name: fields.name ?? "",
            code: fields.code ?? "",
            description: fields.description ?? "",
            manufacturer: fields.manufacturer ?? "",
            supplier: fields.supplier ?? "",
            status: fields.status ?? "draft",
          },
        }),
      ),
    onSuccess: (material) => {
      void client.invalidateQueries({ queryKey: ["catalog"] });
      navigate(`/catalog/materials/${material.id}`, { replace: true, state: { created: true } });
    },
  });
  return (
    <div className="catalog-page">
      <nav aria-label={t("breadcrumbs")} className="catalog-breadcrumbs">
        <Link to="/catalog">{t("title")}</Link>
      </nav>
      <h1>{t("new.title")}</h1>
      <QueryState query={categories}>
        {(list) => (
          <div className="card">
            <MaterialForm
              categories={list}
              initialCategoryId={search.get("category")}
              submitLabel={t("new.create")}
              pending={create.isPending}
              error={create.error}
              onSubmit={(fields) => create.mutate(fields)}
            />
          </div>
        )}
      </QueryState>
    </div>
  );
}
