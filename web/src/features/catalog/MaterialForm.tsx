// A material's fields and its category's typed properties, for creating and for editing.
import { useMemo, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";

import { Field, FormProblem, SelectField, TextAreaField, formErrors } from "../../components/Form";
import { useFormat } from "../../i18n/format";
import { categoryPath, treeOrder, type Category, type Material } from "./api";
import { PropertyInputs } from "./PropertyInputs";
import { bareValues, changedValues, fromInputs, inputSpecs, toInputs, type InputValues, type Units } from "./schemaForm";

export const STATUSES = ["draft", "active", "discontinued"] as const;
type Status = (typeof STATUSES)[number];

export interface MaterialFields {
  category_id?: string | null;
  name?: string;
  code?: string;
  description?: string;
  status?: Status;
  price?: string | null;
  currency?: string | null;
  manufacturer?: string;
  supplier?: string;
  tags?: string[];
  properties?: Record<string, unknown>;
}

function parseTags(text: string): string[] {
  return [...new Set(text.split(",").map((tag) => tag.trim()).filter(Boolean))];
}

export function MaterialForm({
  material,
  categories,
  initialCategoryId,
  submitLabel,
  pending,
  error,
  onSubmit,
}: {
  material?: Material;
  categories: Category[];
  initialCategoryId?: string | null;
  submitLabel: string;
  pending: boolean;
  error: unknown;
  onSubmit: (fields: MaterialFields) => void;
}) {
  const { t } = useTranslation("catalog");
  const { units } = useFormat();
  const byId = useMemo(() => new Map(categories.map((category) => [category.id, category])), [categories]);
  const [categoryId, setCategoryId] = useState<string>(material?.category_id ?? initialCategoryId ?? "");
  const schema = byId.get(categoryId)?.effective_properties ?? [];
  const specs = useMemo(() => inputSpecs(schema, units as Units), [schema, units]);
  const [name, setName] = useState(material?.name ?? "");
  const [code, setCode] = useState(material?.code ?? "");
  const [description, setDescription] = useState(material?.description ?? "");
  const [status, setStatus] = useState<Status>(material?.status ?? "draft");
  const [price, setPrice] = useState(material?.price ?? "");
  const [currency, setCurrency] = useState(material?.currency ?? "EUR");
  const [manufacturer, setManufacturer] = useState(material?.manufacturer ?? "");
  const [supplier, setSupplier] = useState(material?.supplier ?? "");
  const [tags, setTags] = useState((material?.tags ?? []).join(", "));
  const [values, setValues] = useState<InputValues>(() => toInputs(schema, material?.properties ?? {}, units as Units));
  const { fields, message } = formErrors(error);

  function submit(event: FormEvent) {
    event.preventDefault();
    const properties = fromInputs(schema, { ...toInputs(schema, {}, units as Units), ...values }, units as Units);
    const priceText = String(price).trim();
    const next: MaterialFields = {
      category_id: categoryId || null,
      name: name.trim(),
      code: code.trim(),
      description,
      status,
      price: priceText ? priceText.replace(",", ".") : null,
      currency: priceText ? currency.trim().toUpperCase() : null,
      manufacturer: manufacturer.trim(),
      supplier: supplier.trim(),
      tags: parseTags(tags),
    };
    if (!material) {
      const given = Object.fromEntries(Object.entries(properties).filter(([, value]) => value !== null));
      onSubmit({ ...next, properties: given });
      return;
    }
    // Only what changed: a PATCH that repeats the rest would fight another person's edit.
    const before: Record<string, unknown> = {
      category_id: material.category_id,
      name: material.name,
      code: material.code,
      description: material.description,
      status: material.status,
      price: material.price,
      currency: material.price ? material.currency : null,
      manufacturer: material.manufacturer,
      supplier: material.supplier,
      tags: material.tags,
    };
    const changed = changedValues(before, next as Record<string, unknown>) as MaterialFields;
    if (changed.price !== undefined || changed.currency !== undefined) {
      changed.price = next.price ?? null;
      changed.currency = next.currency ?? null;
    }
    const changedProperties = changedValues(bareValues(schema, material.properties), properties);
    if (Object.keys(changedProperties).length) changed.properties = changedProperties;
    onSubmit(changed);
  }

  return (
    <form onSubmit={submit} noValidate className="catalog-form">
      <SelectField
        label={t("form.category")}
        value={categoryId}
        error={fields.category_id}
        onChange={(event) => {
          const chosen = event.target.value;
          setCategoryId(chosen);
          const nextSchema = byId.get(chosen)?.effective_properties ?? [];
          setValues((current) => ({ ...toInputs(nextSchema, material?.properties ?? {}, units as Units), ...current }));
        }}
      >
        <option value="">{t("form.noCategory")}</option>
        {treeOrder(categories).map(({ category }) => (
          <option key={category.id} value={category.id}>
            {categoryPath(category, byId)}
          </option>
        ))}
      </SelectField>
      <div className="catalog-form-grid">
        <Field label={t("form.name")} name="name" required value={name} onChange={(event) => setName(event.target.value)} error={fields.name} />
        <Field label={t("form.code")} name="code" required value={code} onChange={(event) => setCode(event.target.value)} error={fields.code} />
        <SelectField label={t("form.status")} value={status} error={fields.status} onChange={(event) => setStatus(event.target.value as Status)}>
          {STATUSES.map((option) => (
            <option key={option} value={option}>
              {t(`status.${option}`)}
            </option>
          ))}
        </SelectField>
        <Field
          label={t("form.tags")}
          name="tags"
          hint={t("form.tagsHint")}
          value={tags}
          onChange={(event) => setTags(event.target.value)}
          error={fields.tags ?? Object.entries(fields).find(([key]) => key.startsWith("tags."))?.[1]}
        />
        <Field
          label={t("form.price")}
          name="price"
          inputMode="decimal"
          value={price ?? ""}
          onChange={(event) => setPrice(event.target.value)}
          error={fields.price}
        />
        <Field
          label={t("form.currency")}
          name="currency"
          maxLength={3}
          value={currency ?? ""}
          onChange={(event) => setCurrency(event.target.value)}
          error={fields.currency}
        />
        <Field label={t("form.manufacturer")} name="manufacturer" value={manufacturer} onChange={(event) => setManufacturer(event.target.value)} error={fields.manufacturer} />
        <Field label={t("form.supplier")} name="supplier" value={supplier} onChange={(event) => setSupplier(event.target.value)} error={fields.supplier} />
      </div>
      <TextAreaField
        label={t("form.description")}
        value={description}
        onChange={(event) => setDescription(event.target.value)}
        error={fields.description}
      />
      <h2>{t("form.properties")}</h2>
      {units === "imperial" && <p className="muted">{t("form.imperialNote")}</p>}
      <PropertyInputs
        specs={specs}
        values={values}
        errors={fields}
        onChange={(key, value) => setValues((current) => ({ ...current, [key]: value }))}
      />
      <FormProblem message={message ?? (fields.properties ? fields.properties : null)} />
      <button type="submit" className="primary" disabled={pending}>
        {pending ? t("form.saving") : submitLabel}
      </button>
    </form>
  );
}
