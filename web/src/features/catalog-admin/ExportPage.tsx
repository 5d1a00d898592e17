// /catalog/export: the catalog (or one category) as CSV or JSON, in the columns an import reads.
import { useMutation } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";

import { describe } from "../../api/problem";
import { useCan } from "../../app/me";
import { FormProblem, SelectField } from "../../components/Form";
import { AdminFrame, NotAllowed } from "./AdminFrame";
import { fetchExport, useCategories } from "./api";
import { buildTree, flatten, pathName } from "./tree";

export default function ExportPage() {
  const { t } = useTranslation("catalogAdmin");
  const canRead = useCan("materials:read");
  return <AdminFrame title={t("export.title")}>{canRead ? <ExportForm /> : <NotAllowed />}</AdminFrame>;
}

function ExportForm() {
  const { t } = useTranslation("catalogAdmin");
  const categories = useCategories();
  const [format, setFormat] = useState<"csv" | "json">("csv");
  const [categoryId, setCategoryId] = useState("");
  const [file, setFile] = useState<{ url: string; fileName: string; size: number } | null>(null);
  const prepare = useMutation({
    mutationFn: () => fetchExport(format, categoryId || null),
    onSuccess: ({ blob, fileName }) => setFile({ url: URL.createObjectURL(blob), fileName, size: blob.size }),
  });
  // A new choice makes the prepared file stale; its blob URL is freed when it goes.
  useEffect(() => () => (file ? URL.revokeObjectURL(file.url) : undefined), [file]);
  const all = categories.data ?? [];
  return (
    <form
      className="card stack"
      noValidate
      onSubmit={(event) => {
        event.preventDefault();
        setFile(null);
        prepare.mutate();
      }}
    >
      <p className="muted">{t("export.hint")}</p>
      <fieldset className="stack">
        <legend>{t("export.format")}</legend>
        {(["csv", "json"] as const).map((value) => (
          <label key={value} className="checkbox-field">
            <input type="radio" name="format" value={value} checked={format === value}
              onChange={() => {
                setFormat(value);
                setFile(null);
              }} />
            {t(`export.${value}`)}
          </label>
        ))}
      </fieldset>
      <SelectField label={t("export.category")} value={categoryId} disabled={categories.isPending}
        hint={categories.error ? describe(categories.error) : undefined}
        onChange={(event) => {
          setCategoryId(event.target.value);
          setFile(null);
        }}>
        <option value="">{t("export.wholeCatalog")}</option>
        {flatten(buildTree(all)).map(({ category }) => (
          <option key={category.id} value={category.id}>
            {pathName(all, category.id)}
          </option>
        ))}
      </SelectField>
      <div className="row">
        <button type="submit" className="primary" disabled={prepare.isPending}>
          {prepare.isPending ? t("export.preparing") : t("export.prepare")}
        </button>
        <span role="status" aria-live="polite">
          {file && (
            <a className="button" href={file.url} download={file.fileName}>
              {t("export.download", { name: file.fileName })}
            </a>
          )}
        </span>
      </div>
      {prepare.error && <FormProblem message={describe(prepare.error)} />}
    </form>
  );
}
