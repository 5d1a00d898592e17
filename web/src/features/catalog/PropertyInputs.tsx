// The inputs of a category's typed properties, generated from its schema.
import { useId } from "react";
import { useTranslation } from "react-i18next";

import { Field, SelectField } from "../../components/Form";

import type { InputSpec, InputValue, InputValues, Sides } from "./schemaForm";

export function PropertyInputs({
  specs,
  values,
  errors,
  onChange,
}: {
  specs: InputSpec[];
  values: InputValues;
  errors: Record<string, string>;
  onChange: (key: string, value: InputValue) => void;
}) {
  const { t } = useTranslation("catalog");
  if (!specs.length) return <p className="muted">{t("form.noProperties")}</p>;
  return (
    <div className="catalog-properties">
      {specs.map((spec) => (
        <PropertyInput
          key={spec.key}
          spec={spec}
          value={values[spec.key]}
          error={errors[`properties.${spec.key}`] ?? errors[spec.key]}
          onChange={(value) => onChange(spec.key, value)}
        />
      ))}
    </div>
  );
}

function PropertyInput({
  spec,
  value,
  error,
  onChange,
}: {
  spec: InputSpec;
  value: InputValue | undefined;
  error: string | undefined;
  onChange: (value: InputValue) => void;
}) {
  const { t } = useTranslation("catalog");
  const id = useId();
  const described = error ? `${id}-error` : undefined;
  const label = spec.unit ? `${spec.label} (${spec.unit})` : spec.label;
  const limits =
    spec.min !== null && spec.max !== null
      ? t("form.between", { min: spec.min, max: spec.max })
      : spec.min !== null
        ? t("form.atLeast", { min: spec.min })
        : spec.max !== null
          ? t("form.atMost", { max: spec.max })
          : "";
  // What a labelled field of it shares: the asterisk of a required one is for the eye only.
  const field = {
    label: (
      <>
        {label}
        {spec.required && <span aria-hidden="true"> *</span>}
      </>
    ),
    hint: [spec.description, limits].filter(Boolean).join(" ") || undefined,
    error,
    name: `properties.${spec.key}`,
    required: spec.required,
  };

  switch (spec.kind) {
    case "checkbox":
      return (
        <div className={`field field-check${error ? " field-invalid" : ""}`}>
          <input
            id={id}
            name={`properties.${spec.key}`}
            aria-invalid={error ? true : undefined}
            aria-describedby={described}
            type="checkbox"
            checked={value === true}
            onChange={(event) => onChange(event.target.checked)}
          />
          <label htmlFor={id}>{spec.label}</label>
          {error && (
            <small id={`${id}-error`} className="field-error">
              {error}
            </small>
          )}
        </div>
      );
    case "select":
      return (
        <SelectField {...field} value={typeof value === "string" ? value : ""} onChange={(event) => onChange(event.target.value)}>
          <option value="">{t("form.none")}</option>
          {spec.options.map((option) => (
            <option key={option} value={option}>
              {option}
            </option>
          ))}
        </SelectField>
      );
    case "multiselect": {
      const chosen = Array.isArray(value) ? value : [];
      return (
        <fieldset className={`field catalog-options${error ? " field-invalid" : ""}`} aria-describedby={described}>
          <legend>
            {spec.label}
            {spec.required && <span aria-hidden="true"> *</span>}
          </legend>
          {spec.options.map((option) => (
            <label key={option} className="catalog-check">
              <input
                type="checkbox"
                checked={chosen.includes(option)}
                onChange={(event) =>
                  onChange(event.target.checked ? [...chosen, option] : chosen.filter((item) => item !== option))
                }
              />
              {option}
            </label>
          ))}
          {error && (
            <small id={`${id}-error`} className="field-error">
              {error}
            </small>
          )}
        </fieldset>
      );
    }
    case "dimensions": {
      const sides: Sides = typeof value === "object" && !Array.isArray(value) ? value : { length: "", width: "", thickness: "" };
      return (
        <fieldset className={`field catalog-dimensions${error ? " field-invalid" : ""}`} aria-describedby={described}>
          <legend>{label}</legend>
          {(["length", "width", "thickness"] as const).map((side) => (
            <label key={side}>
              <span>{t(`form.${side}`)}</span>
              <input
                type="number"
                step="any"
                inputMode="decimal"
                value={sides[side]}
                onChange={(event) => onChange({ ...sides, [side]: event.target.value })}
              />
            </label>
          ))}
          {error && (
            <small id={`${id}-error`} className="field-error">
              {error}
            </small>
          )}
        </fieldset>
      );
    }
    case "number":
    case "integer":
      return (
        <Field
          {...field}
          type="number"
          step={spec.kind === "integer" && !spec.unit ? 1 : "any"}
          inputMode="decimal"
          value={typeof value === "string" ? value : ""}
          onChange={(event) => onChange(event.target.value)}
        />
      );
    case "colour":
      return (
        <Field
          {...field}
          type="text"
          placeholder="#RRGGBB"
          value={typeof value === "string" ? value : ""}
          onChange={(event) => onChange(event.target.value)}
        />
      );
    default:
      return (
        <Field {...field} type="text" value={typeof value === "string" ? value : ""} onChange={(event) => onChange(event.target.value)} />
      );
  }
}
