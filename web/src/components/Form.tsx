// Form pieces: labelled fields with their error beside them, and the form's own problem.
// Every field wires its label, `aria-invalid` and `aria-describedby` (error, hint) the same way.
import {
  useId,
  type InputHTMLAttributes,
  type ReactNode,
  type SelectHTMLAttributes,
  type TextareaHTMLAttributes,
} from "react";

import { ApiError, describe, splitErrors } from "../api/problem";

interface Described {
  label: ReactNode;
  error?: string | undefined;
  hint?: ReactNode;
}

/** The control's id and the attributes that tie its error and hint to it. */
function useDescribed(error: string | undefined, hint: ReactNode) {
  const id = useId();
  const described = [error ? `${id}-error` : null, hint ? `${id}-hint` : null].filter(Boolean).join(" ");
  return { id, "aria-invalid": error ? true : undefined, "aria-describedby": described || undefined } as const;
}

function Notes({ id, error, hint }: { id: string; error?: string | undefined; hint?: ReactNode }) {
  return (
    <>
      {hint && (
        <small id={`${id}-hint`} className="hint">
          {hint}
        </small>
      )}
      {error && (
        <small id={`${id}-error`} className="field-error">
          {error}
        </small>
      )}
    </>
  );
}

function FieldFrame({ id, label, error, hint, children }: Described & { id: string; children: ReactNode }) {
  return (
    <div className={`field${error ? " field-invalid" : ""}`}>
      <label htmlFor={id}>{label}</label>
      {children}
      <Notes id={id} error={error} hint={hint} />
    </div>
  );
}

export function Field({ label, error, hint, ...input }: Described & InputHTMLAttributes<HTMLInputElement>) {
  const control = useDescribed(error, hint);
  return (
    <FieldFrame id={control.id} label={label} error={error} hint={hint}>
      <input {...control} {...input} />
    </FieldFrame>
  );
}

export function SelectField({
  label,
  error,
  hint,
  children,
  ...select
}: Described & { children: ReactNode } & SelectHTMLAttributes<HTMLSelectElement>) {
  const control = useDescribed(error, hint);
  return (
    <FieldFrame id={control.id} label={label} error={error} hint={hint}>
      <select {...control} {...select}>
        {children}
      </select>
    </FieldFrame>
  );
}

export function TextAreaField({ label, error, hint, ...textarea }: Described & TextareaHTMLAttributes<HTMLTextAreaElement>) {
  const control = useDescribed(error, hint);
  return (
    <FieldFrame id={control.id} label={label} error={error} hint={hint}>
      <textarea {...control} {...textarea} />
    </FieldFrame>
  );
}

/** A checkbox with its label after it, and its error and hint below. */
export function CheckboxField({
  label,
  checked,
  onChange,
  error,
  hint,
  disabled,
}: Described & { checked: boolean; onChange: (checked: boolean) => void; disabled?: boolean | undefined }) {
  const control = useDescribed(error, hint);
  return (
    <div className={`field field-check${error ? " field-invalid" : ""}`}>
      <input {...control} type="checkbox" checked={checked} disabled={disabled}
        onChange={(event) => onChange(event.target.checked)} />
      <label htmlFor={control.id}>{label}</label>
      <Notes id={control.id} error={error} hint={hint} />
    </div>
  );
}

/** Field errors by name, and one sentence for the rest, from whatever a mutation threw. */
export function formErrors(error: unknown): { fields: Record<string, string>; message: string | null } {
  if (!error) return { fields: {}, message: null };
  if (error instanceof ApiError) {
    const { fields, general } = splitErrors(error.problem);
    const hasFields = Object.keys(fields).length > 0;
    const message = general.length ? general.join(" ") : hasFields ? null : describe(error);
    return { fields, message };
  }
  return { fields: {}, message: describe(error) };
}

/**
 * One sentence for a problem where no field shows its part (a confirmation has none): the
 * server's own sentence when it only named fields.
 */
export function problemSentence(error: unknown): string | null {
  if (!error) return null;
  return formErrors(error).message ?? describe(error);
}

export function FormProblem({ message }: { message: string | null }) {
  if (!message) return null;
  return (
    <p className="form-problem" role="alert">
      {message}
    </p>
  );
}
