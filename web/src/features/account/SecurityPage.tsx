// Password, two-factor authentication and sessions (where the account is signed in).
import { useMutation } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";

import { api } from "../../api/client";
import { unwrap } from "../../api/problem";
import { Field, FormProblem, formErrors } from "../../components/Form";
import { AccountNav } from "./AccountRoutes";
import { Sessions } from "./Sessions";
import { TwoFactor } from "./TwoFactor";
import { useStepUp } from "./stepUp";

export function SecurityPage() {
  const { t } = useTranslation("account");
  const { run, dialog } = useStepUp();
  return (
    <div className="account stack">
      <header className="page-header">
        <h1>{t("title")}</h1>
      </header>
      <AccountNav />
      <PasswordForm run={run} />
      <TwoFactor run={run} />
      <Sessions run={run} />
      {dialog}
    </div>
  );
}

export type RunWithStepUp = <T>(action: () => Promise<T>) => Promise<T>;

function PasswordForm({ run }: { run: RunWithStepUp }) {
  const { t } = useTranslation("account");
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [repeat, setRepeat] = useState("");
  const [mismatch, setMismatch] = useState(false);
  const change = useMutation({
    mutationFn: () =>
      run(async () =>
        unwrap(await api.POST("/api/v1/me/password", { body: { current_password: current, new_password: next } })),
      ),
    onSuccess: () => {
      setCurrent("");
      setNext("");
      setRepeat("");
    },
  });
  const { fields, message } = formErrors(change.error);

  function submit(event: FormEvent) {
    event.preventDefault();
    const differ = next !== repeat;
    setMismatch(differ);
    if (!differ) change.mutate();
  }

  return (
    <section className="card" aria-labelledby="password-title">
      <h2 id="password-title">{t("password.title")}</h2>
      <form onSubmit={submit} noValidate>
        <Field label={t("password.current")} type="password" name="current_password" autoComplete="current-password"
          required value={current} onChange={(event) => setCurrent(event.target.value)} error={fields.current_password} />
        <Field label={t("password.new")} type="password" name="new_password" autoComplete="new-password" required
          value={next} onChange={(event) => setNext(event.target.value)} error={fields.new_password}
          hint={t("password.hint")} />
        <Field label={t("password.repeat")} type="password" name="repeat_password" autoComplete="new-password" required
          value={repeat} onChange={(event) => setRepeat(event.target.value)}
          error={mismatch ? t("password.mismatch") : undefined} />
        <FormProblem message={message} />
        <div className="row">
          <button type="submit" className="primary" disabled={change.isPending || !current || !next || !repeat}>
            {t("password.save")}
          </button>
          <span role="status" aria-live="polite">
            {change.isSuccess ? t("password.saved") : ""}
          </span>
        </div>
      </form>
    </section>
  );
}
