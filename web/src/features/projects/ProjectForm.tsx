// A project's name, client, description and teams: the form that creates one and edits one.
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";

import { Field, FormProblem, TextAreaField, formErrors } from "../../components/Form";
import { TeamChoice } from "./TeamChoice";

export interface ProjectFields {
  name: string;
  client: string;
  description: string;
  team_ids: string[];
}

export function ProjectForm({
  initial,
  submitLabel,
  pending,
  error,
  withTeams,
  onSubmit,
  onCancel,
}: {
  initial: ProjectFields;
  submitLabel: string;
  pending: boolean;
  error: unknown;
  withTeams: boolean;
  onSubmit: (fields: ProjectFields) => void;
  onCancel: () => void;
}) {
  const { t } = useTranslation("projects");
  const [form, setForm] = useState(initial);
  const { fields, message } = formErrors(error);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    onSubmit({ ...form, name: form.name.trim(), client: form.client.trim(), description: form.description.trim() });
  };
  return (
    <form onSubmit={submit} noValidate>
      <Field
        label={t("name")}
        name="name"
        required
        maxLength={200}
        value={form.name}
        onChange={(event) => setForm({ ...form, name: event.target.value })}
        error={fields.name}
      />
      <Field
        label={t("client")}
        name="client"
        maxLength={200}
        value={form.client}
        onChange={(event) => setForm({ ...form, client: event.target.value })}
        error={fields.client}
      />
      <TextAreaField
        label={t("description")}
        name="description"
        maxLength={2000}
        value={form.description}
        onChange={(event) => setForm({ ...form, description: event.target.value })}
        error={fields.description}
      />
      {withTeams && <TeamChoice value={form.team_ids} onChange={(team_ids) => setForm({ ...form, team_ids })} />}
      {fields.team_ids && <p className="field-error">{fields.team_ids}</p>}
      <FormProblem message={message} />
      <div className="row form-actions">
        <button type="submit" className="primary" disabled={pending}>
          {submitLabel}
        </button>
        <button type="button" onClick={onCancel}>
          {t("common:cancel")}
        </button>
      </div>
    </form>
  );
}
