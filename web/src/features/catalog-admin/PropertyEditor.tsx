// A category's property schema: what its ancestors define (read only) and its own properties,
// each typed, with unit, limits, options and whether materials must give it.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";

import { api } from "../../api/client";
import { ApiError, describe, unwrap } from "../../api/problem";
import { CheckboxField, Field, FormProblem, SelectField, TextAreaField } from "../../components/Form";
import {
  PROPERTY_TYPES,
  checkDrafts,
  emptyDraft,
  fromDraft,
  hasErrors,
  hasOptions,
  hasRange,
  hasUnit,
  inheritedOf,
  serverErrorsByRow,
  suggestKey,
  toDraft,
  unitsFor,
  type PropertyDefinition,
  type PropertyDraft,
} from "./schema";
import type { Category } from "./tree";

/** The ancestor nearest to the category that defines `key`. */
function definedBy(categories: Category[], category: Category, key: string): Category | undefined {
  const byId = new Map(categories.map((other) => [other.id, other]));
  return [...category.path]
    .reverse()
    .map((id) => byId.get(id))
    .find((ancestor) => ancestor?.properties.some((property) => property.key === key));
}

export function PropertyEditor({ category, categories, canWrite }: { category: Category; categories: Category[]; canWrite: boolean }) {
  const { t } = useTranslation("catalogAdmin");
  const inherited = inheritedOf(category);
  return (
    <section className="card stack" aria-labelledby="schema-heading">
      <h3 id="schema-heading">{t("schema.title")}</h3>
      <p className="muted">{t("schema.hint")}</p>
      {inherited.length > 0 && (
        <div className="stack">
          <h4>{t("schema.inherited")}</h4>
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">{t("schema.label")}</th>
                  <th scope="col">{t("schema.type")}</th>
                  <th scope="col">{t("schema.from")}</th>
                </tr>
              </thead>
              <tbody>
                {inherited.map((property) => (
                  <tr key={property.key}>
                    <td>
                      {property.label} <code className="muted">{property.key}</code>
                    </td>
                    <td>
                      <PropertySummary property={property} />
                    </td>
                    <td>{definedBy(categories, category, property.key)?.name ?? ""}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </div>
      )}
      {canWrite ? (
        <OwnProperties category={category} inheritedKeys={inherited.map((property) => property.key)} />
      ) : category.properties.length ? (
        <ul>
          {category.properties.map((property) => (
            <li key={property.key}>
              {property.label}: <PropertySummary property={property} />
            </li>
          ))}
        </ul>
      ) : (
        <p>{t("schema.none")}</p>
      )}
    </section>
  );
}

export function PropertySummary({ property }: { property: PropertyDefinition }) {
  const { t } = useTranslation("catalogAdmin");
  const parts = [t(`type.${property.type}`)];
  if (property.unit) parts.push(property.unit);
  if (property.minimum != null || property.maximum != null)
    parts.push(`${property.minimum ?? "…"}–${property.maximum ?? "…"}`);
  if (property.options?.length) parts.push(property.options.join(", "));
  if (property.required) parts.push(t("schema.requiredShort"));
  return <span>{parts.join(" · ")}</span>;
}

function OwnProperties({ category, inheritedKeys }: { category: Category; inheritedKeys: string[] }) {
  const { t } = useTranslation("catalogAdmin");
  const client = useQueryClient();
  const [drafts, setDrafts] = useState<PropertyDraft[]>(() => category.properties.map(toDraft));
  // Keys of saved properties stay as they are typed; a new one follows its label until edited.
  const [keyTouched, setKeyTouched] = useState<boolean[]>(() => category.properties.map(() => true));
  const [checked, setChecked] = useState(false);
  const save = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.PATCH("/api/v1/categories/{category_id}", {
          params: { path: { category_id: category.id } },
          body: { properties: drafts.map(fromDraft) },
        }),
      ),
    onSuccess: () => client.invalidateQueries({ queryKey: ["categories"] }),
  });
  const errors = checkDrafts(drafts, inheritedKeys);
  const server = save.error instanceof ApiError ? serverErrorsByRow(save.error.problem) : { rows: {}, general: [] };
  const inUse = save.error instanceof ApiError && save.error.kind === "property-in-use";

  function change(index: number, patch: Partial<PropertyDraft>) {
    setDrafts((current) =>
      current.map((draft, at) => {
        if (at !== index) return draft;
        const next = { ...draft, ...patch };
        if (patch.label !== undefined && !keyTouched[index]) next.key = suggestKey(patch.label);
        return next;
      }),
    );
  }
  function add() {
    setDrafts((current) => [...current, emptyDraft()]);
    setKeyTouched((current) => [...current, false]);
  }
  function remove(index: number) {
    setDrafts((current) => current.filter((_, at) => at !== index));
    setKeyTouched((current) => current.filter((_, at) => at !== index));
  }
  function shift(index: number, by: number) {
    const swap = <T,>(list: T[]) => {
      const copy = [...list];
      const [item] = copy.splice(index, 1);
      copy.splice(index + by, 0, item!);
      return copy;
    };
    setDrafts(swap);
    setKeyTouched(swap);
  }
  function submit(event: FormEvent) {
    event.preventDefault();
    setChecked(true);
    if (hasErrors(errors)) return;
    save.mutate();
  }

  const shownError = (index: number, field: keyof PropertyDraft) => {
    const key = checked ? errors[index]?.[field] : undefined;
    return key ? t(key) : undefined;
  };

  return (
    <form className="stack" onSubmit={submit} noValidate aria-labelledby="own-heading">
      <h4 id="own-heading">{t("schema.own")}</h4>
      {drafts.length === 0 && <p className="muted">{t("schema.none")}</p>}
      {drafts.map((draft, index) => (
        <fieldset key={index} className="property-draft">
          <legend>{draft.label.trim() || t("schema.newProperty")}</legend>
          <div className="property-grid">
            <Field label={t("schema.label")} value={draft.label} maxLength={200} required
              onChange={(event) => change(index, { label: event.target.value })} error={shownError(index, "label")} />
            <Field label={t("schema.key")} value={draft.key} maxLength={63} required hint={t("schema.keyHint")}
              onChange={(event) => {
                setKeyTouched((current) => current.map((touched, at) => (at === index ? true : touched)));
                change(index, { key: event.target.value });
              }}
              error={shownError(index, "key")} />
            <SelectField label={t("schema.type")} value={draft.type}
              onChange={(event) => change(index, { type: event.target.value as PropertyDraft["type"], unit: "" })}>
              {PROPERTY_TYPES.map((type) => (
                <option key={type} value={type}>
                  {t(`type.${type}`)}
                </option>
              ))}
            </SelectField>
            {hasUnit(draft.type) && (
              <SelectField label={t("schema.unit")} value={draft.unit} onChange={(event) => change(index, { unit: event.target.value })}
                error={shownError(index, "unit")}>
                <option value="">{draft.type === "dimensions" ? t("schema.chooseUnit") : t("schema.noUnit")}</option>
                {unitsFor(draft.type).map((unit) => (
                  <option key={unit} value={unit}>
                    {unit}
                  </option>
                ))}
              </SelectField>
            )}
            {hasRange(draft.type) && (
              <>
                <Field label={t("schema.minimum")} value={draft.minimum} inputMode="decimal"
                  onChange={(event) => change(index, { minimum: event.target.value })} error={shownError(index, "minimum")} />
                <Field label={t("schema.maximum")} value={draft.maximum} inputMode="decimal"
                  onChange={(event) => change(index, { maximum: event.target.value })} error={shownError(index, "maximum")} />
              </>
            )}
          </div>
          {hasOptions(draft.type) && (
            <TextAreaField label={t("schema.options")} hint={t("schema.optionsHint")} rows={3} value={draft.options}
              onChange={(event) => change(index, { options: event.target.value })} error={shownError(index, "options")} />
          )}
          <TextAreaField label={t("schema.description")} rows={1} maxLength={1000} value={draft.description}
            onChange={(event) => change(index, { description: event.target.value })} />
          <CheckboxField label={t("schema.required")} checked={draft.required} onChange={(required) => change(index, { required })} />
          {server.rows[index] && (
            <p className="field-error" role="alert">
              {server.rows[index]}
            </p>
          )}
          <div className="row">
            <button type="button" className="link-button" disabled={index === 0}
              aria-label={t("schema.up", { name: draft.label || index + 1 })} onClick={() => shift(index, -1)}>
              ↑
            </button>
            <button type="button" className="link-button" disabled={index === drafts.length - 1}
              aria-label={t("schema.down", { name: draft.label || index + 1 })} onClick={() => shift(index, 1)}>
              ↓
            </button>
            <button type="button" className="link-button" onClick={() => remove(index)}>
              {t("schema.remove", { name: draft.label || t("schema.newProperty") })}
            </button>
          </div>
        </fieldset>
      ))}
      <div className="row">
        <button type="button" onClick={add}>
          {t("schema.add")}
        </button>
      </div>
      {inUse && (
        <div className="form-problem" role="alert">
          <p>{t("schema.inUse")}</p>
          <p>{describe(save.error)}</p>
        </div>
      )}
      {!inUse && save.error && <FormProblem message={server.general.length ? server.general.join(" ") : describe(save.error)} />}
      {checked && hasErrors(errors) && <FormProblem message={t("schema.fixFirst")} />}
      <div className="row">
        <button type="submit" className="primary" disabled={save.isPending}>
          {t("schema.save")}
        </button>
        <span role="status" aria-live="polite" className="muted">
          {save.isSuccess ? t("saved") : ""}
        </span>
      </div>
    </form>
  );
}
