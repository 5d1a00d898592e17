// Single sign-on through the organization's OpenID Connect provider.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";

import { api, type Schemas } from "../../api/client";
import { ApiError, unwrap } from "../../api/problem";
import { CopyButton } from "../../components/CopyButton";
import { ConfirmDialog } from "../../components/Dialog";
import { CheckboxField, Field, FormProblem, SelectField, formErrors } from "../../components/Form";
import { ErrorState, Loading } from "../../components/States";
import { errorFor, patternErrors, splitList, useRoles } from "./ui";

type Provider = Schemas["SsoProviderRead"];

/** Refusals the server gives as a problem type, each about one field of the form. */
const PROBLEM_FIELDS: Record<string, string> = {
  "sso-issuer-invalid": "issuer",
  "sso-client-secret-required": "client_secret",
  "sso-default-role-not-allowed": "default_role",
};

/** Field errors of a failed save, including those the server names by problem type. */
export function ssoErrors(error: unknown): { fields: Record<string, string>; message: string | null } {
  const { fields, message } = formErrors(error);
  const field = error instanceof ApiError ? PROBLEM_FIELDS[error.kind] : undefined;
  if (field && message) return { fields: { ...fields, [field]: message }, message: null };
  return { fields, message };
}

export function SsoPage() {
  const { t } = useTranslation("admin");
  const provider = useQuery({
    queryKey: ["sso"],
    queryFn: async () => {
      try {
        return unwrap(await api.GET("/api/v1/organization/sso"));
      } catch (error) {
        // Not set up yet: an empty form, not an error.
        if (error instanceof ApiError && error.status === 404) return null;
        throw error;
      }
    },
  });
  if (provider.isPending) return <Loading />;
  if (provider.error || provider.data === undefined) return <ErrorState error={provider.error} onRetry={() => void provider.refetch()} />;
  return (
    <section className="card" aria-labelledby="sso-heading">
      <h2 id="sso-heading">{t("sso.title")}</h2>
      <p className="muted">{provider.data ? t("sso.configured") : t("sso.notConfigured")}</p>
      {/* Not keyed on the stored provider: a save replaces it, and a new form would lose the
          "Saved" it says and the focus of the button that saved. */}
      <SsoForm provider={provider.data} />
    </section>
  );
}

function SsoForm({ provider }: { provider: Provider | null }) {
  const { t } = useTranslation("admin");
  const client = useQueryClient();
  const roles = useRoles();
  const [issuer, setIssuer] = useState(provider?.issuer ?? "");
  const [clientId, setClientId] = useState(provider?.client_id ?? "");
  const [secret, setSecret] = useState("");
  const [defaultRole, setDefaultRole] = useState(provider?.default_role ?? "member");
  const [domains, setDomains] = useState(provider?.allowed_email_domains.join(", ") ?? "");
  const [enabled, setEnabled] = useState(provider?.enabled ?? true);
  const [deleting, setDeleting] = useState(false);
  const save = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.PUT("/api/v1/organization/sso", {
          body: {
            issuer: issuer.trim(),
            client_id: clientId.trim(),
            client_secret: secret ? secret : null,
            default_role: defaultRole,
            allowed_email_domains: splitList(domains),
            enabled,
          },
        }),
      ),
    onSuccess: (saved) => {
      client.setQueryData(["sso"], saved);
      show(saved);
    },
  });
  const remove = useMutation({
    mutationFn: async () => unwrap(await api.DELETE("/api/v1/organization/sso")),
    onSuccess: () => {
      setDeleting(false);
      client.setQueryData(["sso"], null);
      show(null);
      save.reset();
    },
  });
  const problems = ssoErrors(save.error);
  const message = problems.message;
  const fields = patternErrors(save.error, problems.fields, {
    issuer: t("sso.issuerPattern"),
    allowed_email_domains: t("domainPattern"),
  });

  /** What is stored now (nothing, once removed); the secret never comes back to be shown. */
  function show(stored: Provider | null) {
    setIssuer(stored?.issuer ?? "");
    setClientId(stored?.client_id ?? "");
    setSecret("");
    setDefaultRole(stored?.default_role ?? "member");
    setDomains(stored?.allowed_email_domains.join(", ") ?? "");
    setEnabled(stored?.enabled ?? true);
  }

  function submit(event: FormEvent) {
    event.preventDefault();
    save.mutate();
  }

  return (
    <>
      {provider && (
        <dl className="facts">
          <div>
            <dt>{t("sso.redirectUri")}</dt>
            <dd className="row">
              <code>{provider.redirect_uri}</code>
              <CopyButton text={provider.redirect_uri} label={t("sso.copyRedirect")} />
            </dd>
          </div>
          <div>
            <dt>{t("sso.loginUrl")}</dt>
            <dd className="row">
              <code>{provider.login_url}</code>
              <CopyButton text={provider.login_url} label={t("sso.copyLogin")} />
            </dd>
          </div>
        </dl>
      )}
      <form onSubmit={submit} noValidate className="settings-form">
        <Field label={t("sso.issuer")} type="url" value={issuer} required placeholder="https://login.example.com"
          hint={t("sso.issuerHint")} onChange={(event) => setIssuer(event.target.value)} error={fields.issuer} />
        <Field label={t("sso.clientId")} value={clientId} required autoComplete="off"
          onChange={(event) => setClientId(event.target.value)} error={fields.client_id} />
        <Field label={t("sso.clientSecret")} type="password" value={secret} autoComplete="new-password"
          hint={provider?.has_client_secret ? t("sso.secretKept") : t("sso.secretHint")}
          onChange={(event) => setSecret(event.target.value)} error={fields.client_secret} />
        <SelectField label={t("sso.defaultRole")} value={defaultRole} onChange={(event) => setDefaultRole(event.target.value)}
          error={fields.default_role}>
          {(roles.data ?? [{ key: defaultRole, name: defaultRole }])
            .filter((role) => role.key !== "owner")
            .map((role) => (
              <option key={role.key} value={role.key}>
                {role.name}
              </option>
            ))}
        </SelectField>
        <Field label={t("sso.domains")} value={domains} hint={t("sso.domainsHint")} placeholder="example.com"
          onChange={(event) => setDomains(event.target.value)} error={errorFor(fields, "allowed_email_domains")} />
        <CheckboxField label={t("sso.enabled")} checked={enabled} onChange={setEnabled} error={fields.enabled} />
        <FormProblem message={message} />
        <div className="row">
          <button type="submit" className="primary" disabled={save.isPending}>
            {t("save", { ns: "common" })}
          </button>
          {provider && (
            <button type="button" className="danger" onClick={() => setDeleting(true)}>
              {t("sso.delete")}
            </button>
          )}
          <span role="status" aria-live="polite" className="muted">
            {save.isSuccess ? t("saved", { ns: "common" }) : ""}
          </span>
        </div>
      </form>
      <ConfirmDialog
        open={deleting}
        title={t("sso.deleteTitle")}
        confirmLabel={t("sso.delete")}
        pending={remove.isPending}
        error={remove.error}
        onConfirm={() => remove.mutate()}
        onClose={() => {
          setDeleting(false);
          remove.reset();
        }}
      >
        {t("sso.deleteText")}
      </ConfirmDialog>
    </>
  );
}
