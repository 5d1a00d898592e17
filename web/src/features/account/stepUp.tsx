// Changes to the whole account (credentials, sessions) need a recent password proof. When the
// API answers `step-up-required`, a small dialog asks for the password (and the one-time code
// when two-factor authentication is on), then the action runs again once.
import { useCallback, useRef, useState, type FormEvent, type ReactNode } from "react";
import { useTranslation } from "react-i18next";

import { api } from "../../api/client";
import { ApiError, unwrap } from "../../api/problem";
import { CSRF_HEADERS, acceptTokens } from "../../auth/session";
import { Dialog } from "../../components/Dialog";
import { Field, FormProblem, formErrors } from "../../components/Form";

/** The person closed the password dialog: the action did not run. */
export class StepUpCancelled extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StepUpCancelled";
  }
}

export function needsStepUp(error: unknown): boolean {
  return error instanceof ApiError && error.kind === "step-up-required";
}

/**
 * Run `action`; when the API asks for a password proof, `confirm` gets it (true) or the person
 * gives up (false), and the action runs once more. Any other error passes through.
 */
export async function withStepUp<T>(
  action: () => Promise<T>,
  confirm: () => Promise<boolean>,
  cancelled: () => Error = () => new StepUpCancelled("Your password was not confirmed, so nothing was changed."),
): Promise<T> {
  try {
    return await action();
  } catch (error) {
    if (!needsStepUp(error)) throw error;
    if (!(await confirm())) throw cancelled();
    return action();
  }
}

/** `run(action)` with the dialog it may open; render `dialog` once in the screen. */
export function useStepUp(): { run: <T>(action: () => Promise<T>) => Promise<T>; dialog: ReactNode } {
  const { t } = useTranslation("account");
  const [open, setOpen] = useState(false);
  const resolver = useRef<((confirmed: boolean) => void) | null>(null);
  const confirm = useCallback(
    () =>
      new Promise<boolean>((resolve) => {
        resolver.current = resolve;
        setOpen(true);
      }),
    [],
  );
  const run = useCallback(
    <T,>(action: () => Promise<T>) => withStepUp(action, confirm, () => new StepUpCancelled(t("stepUp.cancelled"))),
    [confirm, t],
  );
  const finish = useCallback((confirmed: boolean) => {
    setOpen(false);
    resolver.current?.(confirmed);
    resolver.current = null;
  }, []);
  return { run, dialog: <StepUpDialog open={open} onDone={finish} /> };
}

export function StepUpDialog({ open, onDone }: { open: boolean; onDone: (confirmed: boolean) => void }) {
  const { t } = useTranslation("account");
  return (
    <Dialog open={open} title={t("stepUp.title")} onClose={() => onDone(false)}>
      <StepUpForm onConfirmed={() => onDone(true)} />
    </Dialog>
  );
}

function StepUpForm({ onConfirmed }: { onConfirmed: () => void }) {
  const { t } = useTranslation("account");
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [askCode, setAskCode] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [pending, setPending] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setPending(true);
    setError(null);
    try {
      const tokens = unwrap(
        await api.POST("/api/v1/auth/step-up", {
          body: { password, ...(askCode && code ? { totp_code: code } : {}) },
          headers: CSRF_HEADERS,
        }),
      );
      acceptTokens(tokens);
      onConfirmed();
    } catch (failure) {
      if (failure instanceof ApiError && failure.kind === "mfa-required") setAskCode(true);
      else setError(failure);
    } finally {
      setPending(false);
    }
  }

  const { fields, message } = formErrors(error);
  return (
    <form onSubmit={submit} noValidate className="stack">
      <p>{t("stepUp.text")}</p>
      <Field label={t("stepUp.password")} type="password" name="step-up-password" autoComplete="current-password"
        required autoFocus value={password} onChange={(event) => setPassword(event.target.value)} error={fields.password} />
      {askCode && (
        <Field label={t("stepUp.code")} name="step-up-code" autoComplete="one-time-code" inputMode="numeric" required
          autoFocus value={code} onChange={(event) => setCode(event.target.value.trim())} error={fields.totp_code} />
      )}
      <FormProblem message={message} />
      <button type="submit" className="primary" disabled={pending || !password}>
        {t("stepUp.confirm")}
      </button>
    </form>
  );
}
