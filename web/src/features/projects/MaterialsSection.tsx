// The materials chosen for a project: quantity, unit and note editable in place, what each
// line comes to, and new ones added from the catalog.
import { useId, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";

import { api, type Schemas } from "../../api/client";
import { unwrap } from "../../api/problem";
import { ApiImage } from "../../components/ApiImage";
import { FormProblem, formErrors } from "../../components/Form";
import { Empty, ErrorState, Loading } from "../../components/States";
import { useFormat } from "../../i18n/format";
import {
  useMaterialThumbnail,
  useProjectMaterials,
  useProjectMutation,
  type Project,
  type ProjectMaterial,
} from "./api";
import { MaterialPicker } from "./MaterialPicker";
import { lineTotal, parseQuantity, quantityDecimal, quantityInputText, UNIT_SUGGESTIONS } from "./quantity";

export function MaterialsSection({ project, editable }: { project: Project; editable: boolean }) {
  const { t } = useTranslation("projects");
  const materials = useProjectMaterials(project.id);
  const [picking, setPicking] = useState(false);
  const unitsListId = useId();
  return (
    <section className="project-materials" aria-labelledby="project-materials-title">
      <div className="section-header">
        <h2 id="project-materials-title">{t("materials")}</h2>
        {editable && (
          <button type="button" className="primary" onClick={() => setPicking(true)}>
            {t("addMaterial")}
          </button>
        )}
      </div>
      {materials.isPending ? (
        <Loading />
      ) : materials.error ? (
        <ErrorState error={materials.error} onRetry={() => void materials.refetch()} />
      ) : materials.items.length === 0 ? (
        <Empty>{editable ? t("noMaterialsInvite") : t("noMaterials")}</Empty>
      ) : (
        <ul className="material-lines">
          {materials.items.map((line) => (
            <MaterialLine key={line.material_id} project={project} line={line} editable={editable} unitsListId={unitsListId} />
          ))}
        </ul>
      )}
      {materials.hasNextPage && (
        <button type="button" onClick={() => void materials.fetchNextPage()} disabled={materials.isFetchingNextPage}>
          {t("common:loadMore")}
        </button>
      )}
      <datalist id={unitsListId}>
        {UNIT_SUGGESTIONS.map((unit) => (
          <option key={unit} value={unit} />
        ))}
      </datalist>
      {editable && (
        <MaterialPicker
          open={picking}
          project={project}
          chosen={new Set(materials.items.map((line) => line.material_id))}
          onClose={() => setPicking(false)}
        />
      )}
    </section>
  );
}

type Change = Schemas["ProjectMaterialChange"];

function MaterialLine({
  project,
  line,
  editable,
  unitsListId,
}: {
  project: Project;
  line: ProjectMaterial;
  editable: boolean;
  unitsListId: string;
}) {
  const { t } = useTranslation("projects");
  const format = useFormat();
  const thumbnail = useMaterialThumbnail(line.material_id, !line.deleted);
  const path = { project_id: project.id, material_id: line.material_id };
  const change = useProjectMutation(async (body: Change) =>
    unwrap(await api.PATCH("/api/v1/projects/{project_id}/materials/{material_id}", { params: { path }, body })),
  );
  const remove = useProjectMutation(async () =>
    unwrap(await api.DELETE("/api/v1/projects/{project_id}/materials/{material_id}", { params: { path } })),
  );
  const [draft, setDraft] = useState(() => ({
    quantity: quantityInputText(line.quantity, format.locale),
    unit: line.unit ?? "",
    note: line.note,
  }));
  const [quantityError, setQuantityError] = useState<string | null>(null);
  const parsed = parseQuantity(draft.quantity);
  const storedQuantity = line.quantity === null ? null : quantityDecimal(line.quantity);
  const previewTotal = parsed.ok ? lineTotal(parsed.value, line.price, line.currency) : null;
  const { fields, message } = formErrors(change.error ?? remove.error);
  const ids = useId();

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!parsed.ok) {
      setQuantityError(t(`quantityError.${parsed.reason}`));
      return;
    }
    setQuantityError(null);
    const body: Change = {};
    if (parsed.value !== storedQuantity) body.quantity = parsed.value;
    const unit = draft.unit.trim() || null;
    if (unit !== (line.unit ?? null)) body.unit = unit;
    if (draft.note.trim() !== line.note) body.note = draft.note.trim();
    if (Object.keys(body).length === 0) return;
    change.mutate(body);
  };

  const price = line.price && line.currency ? format.money(line.price, line.currency) : null;
  const shownTotal = line.line_total && line.currency ? format.money(line.line_total, line.currency) : null;
  const dirty =
    !parsed.ok ||
    parsed.value !== storedQuantity ||
    (draft.unit.trim() || null) !== (line.unit ?? null) ||
    draft.note.trim() !== line.note;

  return (
    <li className="card material-line" aria-labelledby={`${ids}-name`}>
      <div className="material-thumb">
        <ApiImage src={thumbnail.data ?? null} alt={t("photoOf", { name: line.name })} width={72} height={72} />
      </div>
      <div className="material-head">
        <h3 id={`${ids}-name`}>{line.name}</h3>
        <p className="muted small">
          {line.code}
          {line.deleted && <span className="badge bad">{t("deletedFromCatalog")}</span>}
        </p>
        <p className="small">
          {price ? t("pricePer", { price }) : <span className="muted">{t("noPrice")}</span>}
        </p>
      </div>
      {editable ? (
        <form className="material-edit" onSubmit={submit} noValidate>
          <div className={`field${quantityError || fields.quantity ? " field-invalid" : ""}`}>
            <label htmlFor={`${ids}-quantity`}>{t("quantity")}</label>
            <input
              id={`${ids}-quantity`}
              inputMode="decimal"
              autoComplete="off"
              value={draft.quantity}
              aria-invalid={quantityError || fields.quantity ? true : undefined}
              aria-describedby={quantityError || fields.quantity ? `${ids}-quantity-error` : undefined}
              onChange={(event) => setDraft({ ...draft, quantity: event.target.value })}
            />
            {(quantityError || fields.quantity) && (
              <small id={`${ids}-quantity-error`} className="field-error">
                {quantityError ?? fields.quantity}
              </small>
            )}
          </div>
          <div className={`field${fields.unit ? " field-invalid" : ""}`}>
            <label htmlFor={`${ids}-unit`}>{t("unit")}</label>
            <input
              id={`${ids}-unit`}
              list={unitsListId}
              maxLength={20}
              autoComplete="off"
              value={draft.unit}
              aria-invalid={fields.unit ? true : undefined}
              onChange={(event) => setDraft({ ...draft, unit: event.target.value })}
            />
            {fields.unit && <small className="field-error">{fields.unit}</small>}
          </div>
          <div className="field material-note">
            <label htmlFor={`${ids}-note`}>{t("note")}</label>
            <input
              id={`${ids}-note`}
              maxLength={1000}
              value={draft.note}
              onChange={(event) => setDraft({ ...draft, note: event.target.value })}
            />
          </div>
          <div className="material-total">
            <span className="muted small">{t("lineTotal")}</span>
            <strong>{previewTotal && line.currency ? format.money(previewTotal, line.currency) : "—"}</strong>
          </div>
          <div className="row material-buttons">
            <button type="submit" disabled={change.isPending || !dirty}>
              {t("common:save")}
            </button>
            <button
              type="button"
              className="link-button"
              disabled={remove.isPending}
              onClick={() => remove.mutate(undefined)}
              aria-label={t("removeMaterial", { name: line.name })}
            >
              {t("remove")}
            </button>
            <span role="status" className="muted small">
              {change.isSuccess && !dirty ? t("common:saved") : ""}
            </span>
          </div>
          <FormProblem message={message} />
        </form>
      ) : (
        <dl className="material-facts">
          <div>
            <dt>{t("quantity")}</dt>
            <dd>{line.quantity === null ? "—" : line.unit ? format.measure(line.quantity, line.unit) : format.number(line.quantity, 3)}</dd>
          </div>
          <div>
            <dt>{t("lineTotal")}</dt>
            <dd>{shownTotal ?? "—"}</dd>
          </div>
          {line.note && (
            <div>
              <dt>{t("note")}</dt>
              <dd>{line.note}</dd>
            </div>
          )}
        </dl>
      )}
    </li>
  );
}
