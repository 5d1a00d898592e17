// /catalog/settings: the language the catalog's full-text search stems its words in.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";

import { api } from "../../api/client";
import { unwrap } from "../../api/problem";
import { useCan } from "../../app/me";
import { FormProblem, SelectField, formErrors } from "../../components/Form";
import { JobProgress } from "../../components/JobProgress";
import { QueryState } from "../../components/States";
import { AdminFrame, NotAllowed } from "./AdminFrame";

type Settings = { search_language: string; available_languages: string[]; reindex_job_id?: string | null };

export default function SettingsPage() {
  const { t } = useTranslation("catalogAdmin");
  const canRead = useCan("materials:read");
  const settings = useQuery({
    queryKey: ["catalog", "settings"],
    queryFn: async () => unwrap(await api.GET("/api/v1/catalog/settings")),
    enabled: canRead,
  });
  return (
    <AdminFrame title={t("settings.title")}>
      {canRead ? <QueryState query={settings}>{(data) => <SettingsForm settings={data} />}</QueryState> : <NotAllowed />}
    </AdminFrame>
  );
}

function SettingsForm({ settings }: { settings: Settings }) {
  const { t } = useTranslation("catalogAdmin");
  const client = useQueryClient();
  const canManage = useCan("organization:manage");
  const [language, setLanguage] = useState(settings.search_language);
  const save = useMutation({
    mutationFn: async () => unwrap(await api.PATCH("/api/v1/catalog/settings", { body: { search_language: language } })),
    onSuccess: (saved) => client.setQueryData(["catalog", "settings"], saved),
  });
  const { fields, message } = formErrors(save.error);
  // The rewrite this change started, if it started one.
  const jobId = save.data?.reindex_job_id;
  return (
    <form
      className="card stack"
      noValidate
      onSubmit={(event) => {
        event.preventDefault();
        save.mutate();
      }}
    >
      <SelectField label={t("settings.language")} hint={t("settings.languageHint")} value={language} disabled={!canManage}
        onChange={(event) => setLanguage(event.target.value)} error={fields.search_language}>
        {settings.available_languages.map((name) => (
          <option key={name} value={name}>
            {name}
          </option>
        ))}
      </SelectField>
      <FormProblem message={message} />
      {canManage ? (
        <div className="row">
          <button type="submit" className="primary" disabled={save.isPending || language === settings.search_language}>
            {t("save")}
          </button>
          <span role="status" aria-live="polite" className="muted">
            {save.isSuccess ? t("saved") : ""}
          </span>
        </div>
      ) : (
        <p className="muted">{t("settings.onlyManagers")}</p>
      )}
      {jobId && <JobProgress jobId={jobId} label={t("settings.reindexing")} />}
    </form>
  );
}
