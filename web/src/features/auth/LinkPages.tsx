// The screens the links KAI emails open. Opening a link changes nothing by itself (mail
// scanners open links too): each asks for one click.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import { Link, useNavigate } from "react-router";

import { api } from "../../api/client";
import { unwrap } from "../../api/problem";
import { useSession } from "../../app/me";
import { acceptTokens } from "../../auth/session";
import { Field, FormProblem, formErrors } from "../../components/Form";
import { AuthFrame } from "./AuthFrame";
import { useLinkToken } from "./token";

export function VerifyEmailPage() {
  const { t } = useTranslation("auth");
  const token = useLinkToken();
  const verify = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/auth/verify-email", { body: { token: token ?? "" } })),
  });
  const { message } = formErrors(verify.error);
  return (
    <AuthFrame title={t("verifyTitle")}>
      {!token ? (
        <p role="alert">{t("missingToken")}</p>
      ) : verify.isSuccess ? (
        <>
          <p role="status">{t("verified")}</p>
          <Link className="button primary wide" to="/login">
            {t("loginLink")}
          </Link>
        </>
      ) : (
        <>
          <FormProblem message={message} />
          <button type="button" className="primary wide" onClick={() => verify.mutate()} disabled={verify.isPending}>
            {t("verifyButton")}
          </button>
        </>
      )}
    </AuthFrame>
  );
}

export function ResetPasswordPage() {
  const { t } = useTranslation("auth");
  const token = useLinkToken();
  const [value, setValue] = useState("");
  const ask = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/auth/password-reset", { body: { email: value } })),
  });
  const confirm = useMutation({
    mutationFn: async () =>
      unwrap(await api.POST("/api/v1/auth/password-reset/confirm", { body: { token: token ?? "", password: value } })),
  });
  const mutation = token ? confirm : ask;
  const { fields, message } = formErrors(mutation.error);

  function submit(event: FormEvent) {
    event.preventDefault();
    mutation.mutate();
  }

  if (mutation.isSuccess) {
    return (
      <AuthFrame title={t("resetTitle")}>
        <p role="status">{token ? t("resetDone") : t("resetSent")}</p>
        <Link className="button primary wide" to="/login">
          {t("loginLink")}
        </Link>
      </AuthFrame>
    );
  }
  return (
    <AuthFrame title={t("resetTitle")}>
      <form onSubmit={submit} noValidate>
        {token ? (
          <Field label={t("newPassword")} type="password" name="password" autoComplete="new-password" required
            value={value} onChange={(event) => setValue(event.target.value)} error={fields.password} />
        ) : (
          <Field label={t("email")} type="email" name="email" autoComplete="email" required
            value={value} onChange={(event) => setValue(event.target.value)} error={fields.email} />
        )}
        <FormProblem message={message} />
        <button type="submit" className="primary wide" disabled={mutation.isPending}>
          {token ? t("resetConfirm") : t("resetAsk")}
        </button>
      </form>
    </AuthFrame>
  );
}

export function InvitationPage() {
  const { t } = useTranslation("auth");
  const token = useLinkToken();
  const session = useSession();
  const navigate = useNavigate();
  const client = useQueryClient();
  const accept = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.POST("/api/v1/invitations/accept", {
          body: { token: token ?? "" },
          headers: { "X-Requested-With": "kai" },
        }),
      ),
    onSuccess: (answer) => {
      acceptTokens(answer.tokens);
      client.clear();
      navigate("/", { replace: true });
    },
  });
  const { message } = formErrors(accept.error);
  // Kept across the login: the token is gone from the address bar by then.
  if (token) sessionStorage.setItem("kai.invitation", token);
  const pending = token ?? sessionStorage.getItem("kai.invitation");
  return (
    <AuthFrame title={t("invitationTitle")}>
      {!pending ? (
        <p role="alert">{t("missingToken")}</p>
      ) : !session.accessToken ? (
        <>
          <p>{t("invitationLogin")}</p>
          <Link className="button primary wide" to="/login" state={{ from: "/invitations/accept" }}>
            {t("loginLink")}
          </Link>
          <p className="auth-links">
            {t("noAccount")} <Link to="/signup">{t("signupLink")}</Link>
          </p>
        </>
      ) : (
        <>
          <p>{t("invitationText")}</p>
          <FormProblem message={message} />
          <button
            type="button"
            className="primary wide"
            disabled={accept.isPending}
            onClick={() => {
              accept.mutate(undefined, { onSettled: () => sessionStorage.removeItem("kai.invitation") });
            }}
          >
            {t("accept")}
          </button>
        </>
      )}
    </AuthFrame>
  );
}

export function SsoConfirmPage() {
  const { t } = useTranslation("auth");
  const token = useLinkToken();
  const confirm = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/auth/sso/confirm", { body: { token: token ?? "" } })),
  });
  const { message } = formErrors(confirm.error);
  return (
    <AuthFrame title={t("ssoConfirmTitle")}>
      {!token ? (
        <p role="alert">{t("missingToken")}</p>
      ) : confirm.isSuccess ? (
        <>
          <p role="status">{t("ssoLinked")}</p>
          <a className="button primary wide" href={`${new URL(confirm.data.login_url).pathname}?client=web`}>
            {t("ssoContinue")}
          </a>
        </>
      ) : (
        <>
          <p>{t("ssoConfirmText")}</p>
          <FormProblem message={message} />
          <button type="button" className="primary wide" onClick={() => confirm.mutate()} disabled={confirm.isPending}>
            {t("ssoConfirmButton")}
          </button>
        </>
      )}
    </AuthFrame>
  );
}
