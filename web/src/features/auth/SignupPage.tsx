import { useMutation } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import { Link } from "react-router";

import { api } from "../../api/client";
import { unwrap } from "../../api/problem";
import { Field, FormProblem, formErrors } from "../../components/Form";
import { AuthFrame } from "./AuthFrame";

export function SignupPage() {
  const { t } = useTranslation("auth");
  const [form, setForm] = useState({ email: "", password: "", name: "", organization_name: "" });
  const signup = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.POST("/api/v1/auth/signup", {
          body: {
            email: form.email,
            password: form.password,
            name: form.name,
            organization_name: form.organization_name.trim() || null,
          },
        }),
      ),
  });
  const resend = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/auth/verify-email/resend", { body: { email: form.email } })),
  });
  const { fields, message } = formErrors(signup.error);
  const set = (key: keyof typeof form) => (event: { target: { value: string } }) =>
    setForm((current) => ({ ...current, [key]: event.target.value }));

  if (signup.isSuccess) {
    return (
      <AuthFrame title={t("checkInbox")}>
        <p>{t("checkInboxText", { email: form.email })}</p>
        <button type="button" onClick={() => resend.mutate()} disabled={resend.isPending || resend.isSuccess}>
          {t("resend")}
        </button>
        {resend.isSuccess && <p role="status">{t("resent")}</p>}
        <p className="auth-links">
          <Link to="/login">{t("loginLink")}</Link>
        </p>
      </AuthFrame>
    );
  }

  function submit(event: FormEvent) {
    event.preventDefault();
    signup.mutate();
  }

  return (
    <AuthFrame title={t("signupTitle")}>
      <form onSubmit={submit} noValidate>
        <Field label={t("name")} name="name" autoComplete="name" required value={form.name} onChange={set("name")} error={fields.name} />
        <Field label={t("email")} type="email" name="email" autoComplete="email" required value={form.email} onChange={set("email")} error={fields.email} />
        <Field label={t("password")} type="password" name="password" autoComplete="new-password" required value={form.password} onChange={set("password")} error={fields.password} />
        <Field label={t("organizationName")} name="organization" autoComplete="organization" hint={t("organizationHint")}
          value={form.organization_name} onChange={set("organization_name")} error={fields.organization_name} />
        <FormProblem message={message} />
        <button type="submit" className="primary wide" disabled={signup.isPending}>
          {t("signup")}
        </button>
      </form>
      <p className="auth-links">
        {t("haveAccount")} <Link to="/login">{t("loginLink")}</Link>
      </p>
    </AuthFrame>
  );
}
