import { useMutation } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import { Link, useLocation, useNavigate, useSearchParams } from "react-router";

import { api } from "../../api/client";
import { ApiError, unwrap } from "../../api/problem";
import { Field, FormProblem, formErrors } from "../../components/Form";
import { acceptTokens } from "../../auth/session";
import { AuthFrame } from "./AuthFrame";

type Step = "password" | "totp" | "recovery";

export function LoginPage() {
  const { t } = useTranslation("auth");
  const navigate = useNavigate();
  const location = useLocation();
  const [step, setStep] = useState<Step>("password");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [ssoOpen, setSsoOpen] = useState(false);
  const [slug, setSlug] = useState("");
  const next = (location.state as { from?: string } | null)?.from ?? "/";
  // Where a sign-in through the organization's provider came back to (set by the server).
  const [search] = useSearchParams();
  const ssoOutcome = search.get("sso");

  const login = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.POST("/api/v1/auth/login", {
          body: {
            email,
            password,
            refresh_token_in: "cookie",
            ...(step === "totp" ? { totp_code: code } : {}),
            ...(step === "recovery" ? { recovery_code: code } : {}),
          },
        }),
      ),
    onSuccess: (tokens) => {
      acceptTokens(tokens);
      navigate(next, { replace: true });
    },
    onError: (error) => {
      if (error instanceof ApiError && error.kind === "mfa-required") setStep("totp");
    },
  });
  const mfaAsked = login.error instanceof ApiError && login.error.kind === "mfa-required";
  const { fields, message } = formErrors(mfaAsked ? null : login.error);

  function submit(event: FormEvent) {
    event.preventDefault();
    login.mutate();
  }

  return (
    <AuthFrame title={step === "password" ? t("loginTitle") : t("totpTitle")}>
      {ssoOutcome === "sent" && (
        <p role="status" className="notice">
          {t("ssoSentNotice")}
        </p>
      )}
      {ssoOutcome === "failed" && <FormProblem message={t("ssoFailed")} />}
      <form onSubmit={submit} noValidate>
        {step === "password" ? (
          <>
            <Field label={t("email")} type="email" name="email" autoComplete="username" required
              value={email} onChange={(event) => setEmail(event.target.value)} error={fields.email} />
            <Field label={t("password")} type="password" name="password" autoComplete="current-password" required
              value={password} onChange={(event) => setPassword(event.target.value)} error={fields.password} />
          </>
        ) : (
          <Field
            label={step === "totp" ? t("totpCode") : t("recoveryCode")}
            name="code"
            autoComplete="one-time-code"
            inputMode={step === "totp" ? "numeric" : "text"}
            autoFocus
            required
            value={code}
            onChange={(event) => setCode(event.target.value.trim())}
            error={fields.totp_code ?? fields.recovery_code}
          />
        )}
        <FormProblem message={message} />
        <button type="submit" className="primary wide" disabled={login.isPending}>
          {step === "password" ? t("login") : t("verify")}
        </button>
        {step === "totp" && (
          <button type="button" className="link-button" onClick={() => { setStep("recovery"); setCode(""); }}>
            {t("useRecovery")}
          </button>
        )}
      </form>
      {step === "password" && (
        <>
          <p className="auth-links">
            <Link to="/reset-password">{t("forgot")}</Link>
          </p>
          <p className="auth-links">
            {t("noAccount")} <Link to="/signup">{t("signupLink")}</Link>
          </p>
          <div className="sso">
            {ssoOpen ? (
              <form
                onSubmit={(event) => {
                  event.preventDefault();
                  window.location.assign(`/api/v1/auth/sso/${encodeURIComponent(slug.trim())}/login?client=web`);
                }}
              >
                <Field label={t("ssoSlug")} name="organization" required value={slug}
                  onChange={(event) => setSlug(event.target.value)} />
                <button type="submit" className="wide" disabled={!slug.trim()}>
                  {t("ssoContinue")}
                </button>
              </form>
            ) : (
              <button type="button" className="wide" onClick={() => setSsoOpen(true)}>
                {t("sso")}
              </button>
            )}
          </div>
        </>
      )}
    </AuthFrame>
  );
}
