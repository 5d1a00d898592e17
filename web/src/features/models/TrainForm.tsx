// The options of a new training, as POST /api/v1/models takes them.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useId, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";

import { Field, FormProblem, SelectField, formErrors } from "../../components/Form";
import { ErrorState, Loading } from "../../components/States";
import { keys, trainVersion, useBackbones, type ModelVersion } from "./api";

// What the API trains on when it is not told: its own default ensemble.
const DEFAULT_BACKBONES = ["efficientnet-lite0", "handcrafted"];
const MAX_BACKBONES = 4;
// The networks fine-tuning may start from, and how many passes over the photos it makes.
const FINE_TUNABLE = ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"] as const;
type FineTunable = (typeof FINE_TUNABLE)[number];
const DEFAULT_EPOCHS = 8;

export function defaultBackbones(available: string[]): string[] {
  const defaults = DEFAULT_BACKBONES.filter((name) => available.includes(name));
  return defaults.length ? defaults : available.slice(0, 1);
}

export function kindKey(kind: string): "builtIn" | "uploaded" | "fineTuned" {
  return kind === "built-in" ? "builtIn" : kind === "fine-tuned" ? "fineTuned" : "uploaded";
}

export function TrainForm({ onStarted, onCancel }: { onStarted: (version: ModelVersion) => void; onCancel: () => void }) {
  const { t } = useTranslation("models");
  const client = useQueryClient();
  const hintId = useId();
  const backbones = useBackbones();
  const available = backbones.items.map((backbone) => backbone.name);
  const [chosen, setChosen] = useState<string[] | null>(null);
  const selected = chosen ?? defaultBackbones(available);
  const [labelBy, setLabelBy] = useState<"category" | "material">("category");
  const [level, setLevel] = useState("");
  const [mirrored, setMirrored] = useState(false);
  const [fineTune, setFineTune] = useState(false);
  const [network, setNetwork] = useState<FineTunable>("efficientnet-lite0");
  const [epochs, setEpochs] = useState(String(DEFAULT_EPOCHS));
  const [activate, setActivate] = useState(true);
  const [localError, setLocalError] = useState<string | null>(null);
  const train = useMutation({
    mutationFn: trainVersion,
    onSuccess: async (version) => {
      await client.invalidateQueries({ queryKey: keys.all });
      onStarted(version);
    },
  });
  const { fields, message } = formErrors(train.error);

  const toggle = (name: string, on: boolean) => {
    const next = on ? [...selected, name] : selected.filter((each) => each !== name);
    // Kept in the listed order: the first one also measures likeness to the training photos.
    setChosen(available.filter((each) => next.includes(each)));
  };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (selected.length === 0) {
      setLocalError(t("chooseBackbone"));
      return;
    }
    setLocalError(null);
    train.mutate({
      backbones: selected,
      label_by: labelBy,
      category_level: labelBy === "category" && level.trim() ? Number(level) : null,
      test_time_augmentation: mirrored,
      fine_tune: fineTune ? { network, epochs: Number(epochs), holdout: 0.2 } : null,
      activate,
    });
  };

  return (
    <form onSubmit={submit} noValidate className="train-form">
      <fieldset aria-describedby={`${hintId}-backbones`}>
        <legend>{t("backbonesLegend")}</legend>
        <small className="hint muted" id={`${hintId}-backbones`}>
          {t("backbonesHint")}
        </small>
        {backbones.isPending ? (
          <Loading />
        ) : backbones.error ? (
          <ErrorState error={backbones.error} onRetry={() => void backbones.refetch()} />
        ) : (
          <ul className="choices">
            {backbones.items.map((backbone) => {
              const on = selected.includes(backbone.name);
              return (
                <li key={backbone.name}>
                  <label>
                    <input
                      type="checkbox"
                      checked={on}
                      disabled={!on && selected.length >= MAX_BACKBONES}
                      onChange={(event) => toggle(backbone.name, event.target.checked)}
                    />
                    <span>{backbone.name}</span>
                    <span className="muted">{t(kindKey(backbone.kind))}</span>
                  </label>
                </li>
              );
            })}
          </ul>
        )}
        {(localError ?? fields.backbones) && <small className="field-error">{localError ?? fields.backbones}</small>}
      </fieldset>
      <fieldset>
        <legend>{t("labelByLegend")}</legend>
        <label className="choice">
          <input type="radio" name="label_by" checked={labelBy === "category"} onChange={() => setLabelBy("category")} />
          {t("labelByCategory")}
        </label>
        <label className="choice">
          <input type="radio" name="label_by" checked={labelBy === "material"} onChange={() => setLabelBy("material")} />
          {t("labelByMaterial")}
        </label>
        {fields.label_by && <small className="field-error">{fields.label_by}</small>}
      </fieldset>
      {labelBy === "category" && (
        <Field
          label={t("categoryLevel")}
          hint={t("categoryLevelHint")}
          type="number"
          inputMode="numeric"
          min={1}
          max={20}
          value={level}
          onChange={(event) => setLevel(event.target.value)}
          error={fields.category_level}
        />
      )}
      <label className="choice">
        <input type="checkbox" checked={mirrored} onChange={(event) => setMirrored(event.target.checked)} aria-describedby={`${hintId}-mirrored`} />
        {t("mirrored")}
      </label>
      <small className="hint muted" id={`${hintId}-mirrored`}>
        {t("mirroredHint")}
      </small>
      <label className="choice">
        <input type="checkbox" checked={fineTune} onChange={(event) => setFineTune(event.target.checked)} aria-describedby={`${hintId}-fine-tune`} />
        {t("fineTune")}
      </label>
      <small className="hint muted" id={`${hintId}-fine-tune`}>
        {t("fineTuneHint")}
      </small>
      {fineTune && (
        <div className="row">
          <SelectField label={t("fineTuneNetwork")} value={network} onChange={(event) => setNetwork(event.target.value as FineTunable)} error={fields["fine_tune.network"]}>
            {FINE_TUNABLE.map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </SelectField>
          <Field
            label={t("fineTuneEpochs")}
            type="number"
            inputMode="numeric"
            min={1}
            max={50}
            value={epochs}
            onChange={(event) => setEpochs(event.target.value)}
            error={fields["fine_tune.epochs"] ?? fields.fine_tune}
          />
        </div>
      )}
      <label className="choice">
        <input type="checkbox" checked={activate} onChange={(event) => setActivate(event.target.checked)} />
        {t("activateWhenReady")}
      </label>
      <FormProblem message={message} />
      <div className="row dialog-actions">
        <button type="submit" className="primary" disabled={train.isPending || backbones.isPending}>
          {t("startTraining")}
        </button>
        <button type="button" onClick={onCancel}>
          {t("common:cancel")}
        </button>
      </div>
    </form>
  );
}
