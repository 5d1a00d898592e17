// "Add material": search the catalog by words and choose one for the project.
import { useQuery } from "@tanstack/react-query";
import { useId, useState } from "react";
import { useTranslation } from "react-i18next";

import { api, type Schemas } from "../../api/client";
import { describe, unwrap } from "../../api/problem";
import { ApiImage } from "../../components/ApiImage";
import { Dialog } from "../../components/Dialog";
import { FormProblem } from "../../components/Form";
import { Empty, ErrorState, Loading } from "../../components/States";
import { useFormat } from "../../i18n/format";
import { useMaterialThumbnail, useProjectMutation, type Project } from "./api";
import { useDebounced } from "./useDebounced";

type Material = Schemas["MaterialRead"];

export function MaterialPicker({
  open,
  project,
  chosen,
  onClose,
}: {
  open: boolean;
  project: Project;
  chosen: Set<string>;
  onClose: () => void;
}) {
  const { t } = useTranslation("projects");
  return (
    <Dialog open={open} title={t("addMaterial")} onClose={onClose}>
      <PickerBody project={project} chosen={chosen} />
    </Dialog>
  );
}

function PickerBody({ project, chosen }: { project: Project; chosen: Set<string> }) {
  const { t } = useTranslation("projects");
  const [text, setText] = useState("");
  const query = useDebounced(text.trim());
  const searchId = useId();
  const results = useQuery({
    queryKey: ["projects", "picker", query],
    queryFn: async () =>
      unwrap(
        await api.GET("/api/v1/search", {
          params: { query: { q: query || null, mode: "fulltext", sort: query ? "relevance" : "name", facets: false, limit: 12 } },
        }),
      ),
    placeholderData: (previous) => previous,
  });
  const add = useProjectMutation(async (materialId: string) =>
    unwrap(
      await api.PUT("/api/v1/projects/{project_id}/materials/{material_id}", {
        params: { path: { project_id: project.id, material_id: materialId } },
        body: { note: "" },
      }),
    ),
  );
  const [added, setAdded] = useState<string | null>(null);

  return (
    <div className="material-picker">
      <div className="field">
        <label htmlFor={searchId}>{t("searchCatalog")}</label>
        <input
          id={searchId}
          type="search"
          autoComplete="off"
          value={text}
          onChange={(event) => setText(event.target.value)}
          aria-controls={`${searchId}-results`}
        />
      </div>
      <p role="status" className="muted small">
        {added ? t("added", { name: added }) : ""}
      </p>
      <FormProblem message={add.error ? describe(add.error) : null} />
      <div id={`${searchId}-results`}>
        {results.isPending ? (
          <Loading />
        ) : results.error ? (
          <ErrorState error={results.error} onRetry={() => void results.refetch()} />
        ) : results.data.items.length === 0 ? (
          <Empty>{query ? t("noCatalogMatches") : t("catalogEmpty")}</Empty>
        ) : (
          <ul className="picker-results" aria-label={t("catalogResults")}>
            {results.data.items.map(({ material }) => (
              <PickerRow
                key={material.id}
                material={material}
                isChosen={chosen.has(material.id)}
                pending={add.isPending && add.variables === material.id}
                onAdd={() => add.mutate(material.id, { onSuccess: () => setAdded(material.name) })}
              />
            ))}
          </ul>
        )}
      </div>
    </div>
  );
}

function PickerRow({
  material,
  isChosen,
  pending,
  onAdd,
}: {
  material: Material;
  isChosen: boolean;
  pending: boolean;
  onAdd: () => void;
}) {
  const { t } = useTranslation("projects");
  const format = useFormat();
  const thumbnail = useMaterialThumbnail(material.id);
  return (
    <li className="picker-row">
      <ApiImage src={thumbnail.data ?? null} alt={t("photoOf", { name: material.name })} width={48} height={48} className="picker-thumb" />
      <div className="picker-text">
        <strong>{material.name}</strong>
        <span className="muted small">
          {material.code}
          {material.price && material.currency ? ` · ${format.money(material.price, material.currency)}` : ""}
        </span>
      </div>
      {isChosen ? (
        <span className="badge good">{t("inProject")}</span>
      ) : (
        <button type="button" onClick={onAdd} disabled={pending} aria-label={t("addNamed", { name: material.name })}>
          {t("add")}
        </button>
      )}
    </li>
  );
}
