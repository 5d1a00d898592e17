// Recognition thresholds: below which confidence a photo is unknown, and from which likeness
// two catalog images are near-duplicates.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";

import { useCan } from "../../app/me";
import { Field, FormProblem, formErrors } from "../../components/Form";
import { QueryState } from "../../components/States";
import { useFormat } from "../../i18n/format";
import { changeSettings, keys, useRecognitionSettings, type RecognitionSettings } from "./api";

export function SettingsPage() {
  const { t } = useTranslation("models");
  const settings = useRecognitionSettings();
  return (
    <section>
      <header className="page-header">
        <h1>{t("settingsTitle")}</h1>
      </header>
      <p className="muted">{t("settingsIntro")}</p>
      <QueryState query={settings}>{(data) => <SettingsForm settings={data} />}</QueryState>
    </section>
  );
}

const FIELDS = ["confidence_threshold", "near_duplicate_threshold"] as const;
type Name = (typeof FIELDS)[number];

/** The entered text as a number, or null when it is not one. */
export function parseThreshold(text: string): number | null {
  const value = Number(text.trim().replace(",", "."));
  return text.trim() === "" || !Number.isFinite(value) ? null : value;
}

function SettingsForm({ settings }: { settings: RecognitionSettings }) {
  const { t } = useTranslation("models");
  const format = useFormat();
  const canEdit = useCan("models:deploy");
  const client = useQueryClient();
  const [values, setValues] = useState<Record<Name, string>>({
    confidence_threshold: String(settings.confidence_threshold),
    near_duplicate_threshold: String(settings.near_duplicate_threshold),
  });
  const [missing, setMissing] = useState<Partial<Record<Name, string>>>({});
  const [saved, setSaved] = useState(false);
  const save = useMutation({
    mutationFn: changeSettings,
    onSuccess: (data) => {
      client.setQueryData(keys.settings, data);
      setSaved(true);
    },
  });
  const { fields, message } = formErrors(save.error);

  if (!canEdit) {
    return (
      <dl className="facts">
        {FIELDS.map((name) => (
          <div key={name}>
            <dt>{t(name)}</dt>
            <dd>{format.number(settings[name], 3)}</dd>
          </div>
        ))}
      </dl>
    );
  }

  const submit = (event: FormEvent) => {
    event.preventDefault();
    setSaved(false);
    const parsed = Object.fromEntries(FIELDS.map((name) => [name, parseThreshold(values[name])])) as Record<Name, number | null>;
    const empty = Object.fromEntries(FIELDS.filter((name) => parsed[name] === null).map((name) => [name, t("enterNumber")]));
    setMissing(empty);
    if (Object.keys(empty).length) return;
    save.mutate({ confidence_threshold: parsed.confidence_threshold, near_duplicate_threshold: parsed.near_duplicate_threshold });
  };

  return (
    <form onSubmit={submit} noValidate className="card settings-form">
      {FIELDS.map((name) => (
        <Field
          key={name}
          label={t(name)}
          hint={t(`${name}Hint`)}
          type="number"
          inputMode="decimal"
          step="0.01"
          min={name === "near_duplicate_threshold" ? 0.5 : 0}
          max={1}
          value={values[name]}
          onChange={(event) => {
            setSaved(false);
            setValues({ ...values, [name]: event.target.value });
          }}
          error={missing[name] ?? fields[name]}
        />
      ))}
      <FormProblem message={message} />
      <div className="row">
        <button type="submit" className="primary" disabled={save.isPending}>
          {t("common:save")}
        </button>
        <span role="status" aria-live="polite" className="muted">
          {saved ? t("common:saved") : ""}
        </span>
      </div>
    </form>
  );
}
