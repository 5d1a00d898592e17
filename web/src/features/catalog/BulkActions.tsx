// What a selection of materials can have done to it at once: a field set, or deletion.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useMemo, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";

import { api } from "../../api/client";
import { describe, unwrap } from "../../api/problem";
import { ConfirmDialog, Dialog } from "../../components/Dialog";
import { Field, FormProblem, SelectField } from "../../components/Form";
import { categoryPath, treeOrder, type Category, type Material } from "./api";
import { STATUSES } from "./MaterialForm";
import { fromInputs, type Units } from "./schemaForm";

type Action = "status" | "tag" | "category" | "property";

/** The records of a bulk request: each selected material by code, with the field to set. */
export function bulkRecords(
  materials: Material[],
  action: Action,
  value: string,
  property?: { key: string; stored: unknown },
): Record<string, unknown>[] {
  return materials.map((material) => {
    switch (action) {
      case "status":
        return { code: material.code, status: value };
      case "tag":
        return { code: material.code, tags: [...new Set([...material.tags, value.trim()])] };
      case "category":
        return { code: material.code, category_id: value };
      case "property":
        return { code: material.code, properties: { [property!.key]: property!.stored } };
    }
  });
}

export function BulkActions({
  selected,
  categories,
  category,
  onDone,
}: {
  selected: Material[];
  categories: Category[];
  category: Category | undefined;
  onDone: (message?: string) => void;
}) {
  const { t } = useTranslation("catalog");
  const client = useQueryClient();
  const [editing, setEditing] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [action, setAction] = useState<Action>("status");
  const [value, setValue] = useState("");
  const [propertyKey, setPropertyKey] = useState("");
  const byId = useMemo(() => new Map(categories.map((item) => [item.id, item])), [categories]);
  const schema = category?.effective_properties ?? [];
  const definition = schema.find((item) => item.key === propertyKey);

  const finished = (message: string) => {
    setEditing(false);
    setDeleting(false);
    void client.invalidateQueries({ queryKey: ["catalog"] });
    for (const material of selected) void client.invalidateQueries({ queryKey: ["materials", material.id] });
    onDone(message);
  };

  const edit = useMutation({
    mutationFn: async () => {
      const stored =
        action === "property" && definition
          ? fromInputs([definition], { [definition.key]: definition.type === "boolean" ? value === "true" : value }, "metric" as Units)[definition.key]
          : undefined;
      return unwrap(
        await api.POST("/api/v1/materials/bulk", {
          body: {
            materials: bulkRecords(selected, action, value, definition ? { key: definition.key, stored } : undefined),
            mode: "all_or_nothing",
            dry_run: false,
          },
        }),
      );
    },
    onSuccess: (report) => {
      if (report.refused || report.error_count > 0) return;
      finished(t("bulk.edited", { count: report.updated + report.unchanged }));
    },
  });
  const remove = useMutation({
    mutationFn: async () =>
      unwrap(await api.POST("/api/v1/materials/bulk/delete", { body: { ids: selected.map((material) => material.id) } })),
    onSuccess: (answer) => finished(t("bulk.deleted", { count: answer.deleted })),
  });
  const reportProblems = edit.data && (edit.data.refused || edit.data.error_count > 0) ? edit.data.errors.map((error) => error.message).join(" ") : null;

  function submit(event: FormEvent) {
    event.preventDefault();
    if (!value.trim()) return;
    edit.mutate();
  }

  // The values to choose from, as [value, what it reads]; null where one is typed.
  const choices: [string, string][] | null =
    action === "status"
      ? STATUSES.map((status) => [status, t(`status.${status}`)])
      : action === "category"
        ? treeOrder(categories).map(({ category: item }) => [item.id, categoryPath(item, byId)])
        : action === "property" && definition?.type === "boolean"
          ? [["true", t("yes")], ["false", t("no")]]
          : action === "property" && definition?.type === "enum"
            ? (definition.options ?? []).map((option) => [option, option])
            : null;

  return (
    <div className="catalog-bulk" role="region" aria-label={t("bulk.label")}>
      <strong>{t("bulk.selected", { count: selected.length })}</strong>
      <button type="button" onClick={() => setEditing(true)}>
        {t("bulk.edit")}
      </button>
      <button type="button" className="danger" onClick={() => setDeleting(true)}>
        {t("bulk.delete")}
      </button>
      <button type="button" className="link-button" onClick={() => onDone()}>
        {t("bulk.clear")}
      </button>
      <Dialog open={editing} title={t("bulk.editTitle", { count: selected.length })} onClose={() => setEditing(false)}>
        <form onSubmit={submit} noValidate>
          <SelectField
            label={t("bulk.what")}
            value={action}
            onChange={(event) => {
              setAction(event.target.value as Action);
              setValue("");
            }}
          >
            <option value="status">{t("bulk.setStatus")}</option>
            <option value="tag">{t("bulk.addTag")}</option>
            <option value="category">{t("bulk.setCategory")}</option>
            {schema.length > 0 && <option value="property">{t("bulk.setProperty")}</option>}
          </SelectField>
          {action === "property" && (
            <SelectField
              label={t("bulk.property")}
              value={propertyKey}
              onChange={(event) => {
                setPropertyKey(event.target.value);
                setValue("");
              }}
            >
              <option value="">{t("bulk.choose")}</option>
              {schema
                .filter((item) => item.type !== "dimensions" && item.type !== "multi_enum")
                .map((item) => (
                  <option key={item.key} value={item.key}>
                    {item.unit ? `${item.label} (${item.unit})` : item.label}
                  </option>
                ))}
            </SelectField>
          )}
          {choices ? (
            <SelectField label={t("bulk.value")} value={value} onChange={(event) => setValue(event.target.value)} required>
              <option value="">{t("bulk.choose")}</option>
              {choices.map(([choice, text]) => (
                <option key={choice} value={choice}>
                  {text}
                </option>
              ))}
            </SelectField>
          ) : (
            <Field
              label={t("bulk.value")}
              value={value}
              inputMode={definition && (definition.type === "number" || definition.type === "integer") ? "decimal" : undefined}
              onChange={(event) => setValue(event.target.value)}
              required
            />
          )}
          <FormProblem message={edit.error ? describe(edit.error) : reportProblems} />
          <div className="row">
            <button type="submit" className="primary" disabled={edit.isPending || !value.trim() || (action === "property" && !definition)}>
              {t("bulk.apply")}
            </button>
            <button type="button" onClick={() => setEditing(false)}>
              {t("cancel", { ns: "common" })}
            </button>
          </div>
        </form>
      </Dialog>
      <ConfirmDialog
        open={deleting}
        title={t("bulk.deleteTitle", { count: selected.length })}
        confirmLabel={t("bulk.deleteNow", { count: selected.length })}
        pending={remove.isPending}
        error={remove.error}
        onConfirm={() => remove.mutate()}
        onClose={() => setDeleting(false)}
      >
        <p>{t("bulk.deleteConfirm", { count: selected.length })}</p>
        <ul className="catalog-bulk-names">
          {selected.slice(0, 10).map((material) => (
            <li key={material.id}>{material.name}</li>
          ))}
          {selected.length > 10 && <li>{t("bulk.andMore", { count: selected.length - 10 })}</li>}
        </ul>
      </ConfirmDialog>
    </div>
  );
}
