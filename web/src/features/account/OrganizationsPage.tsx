// The organizations a person belongs to, switching between them, and creating a new one.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import { Link, useNavigate } from "react-router";

import { api } from "../../api/client";
import { unwrap } from "../../api/problem";
import { useMe } from "../../app/me";
import { CSRF_HEADERS, acceptTokens } from "../../auth/session";
import { Field, FormProblem, formErrors } from "../../components/Form";
import { Empty, ErrorState, Loading } from "../../components/States";
import { useCursorList } from "../../components/lists";
import { useFormat } from "../../i18n/format";
import { AccountNav } from "./AccountRoutes";
import { useStepUp } from "./stepUp";
import type { RunWithStepUp } from "./SecurityPage";

/** Act for `organizationId` from now on: new tokens, and nothing cached from the old one. */
function useSwitchOrganization(run: RunWithStepUp) {
  const client = useQueryClient();
  const navigate = useNavigate();
  return useMutation({
    mutationFn: (organizationId: string) =>
      run(async () =>
        unwrap(
          await api.POST("/api/v1/auth/switch-organization", {
            body: { organization_id: organizationId },
            headers: CSRF_HEADERS,
          }),
        ),
      ),
    onSuccess: (tokens) => {
      acceptTokens(tokens);
      client.clear();
      navigate("/", { replace: true });
    },
  });
}

export function OrganizationsPage() {
  const { t } = useTranslation("account");
  const format = useFormat();
  const me = useMe();
  const { run, dialog } = useStepUp();
  const switchTo = useSwitchOrganization(run);
  const memberships = useCursorList(["me", "organizations", "all"], async (cursor) =>
    unwrap(await api.GET("/api/v1/me/organizations", { params: { query: { limit: 50, cursor } } })),
  );
  const current = me.data?.organization?.id;
  return (
    <div className="account stack">
      <header className="page-header">
        <h1>{t("title")}</h1>
        <Link className="button primary" to="/account/organizations/new">
          {t("organizations.create")}
        </Link>
      </header>
      <AccountNav />
      <section className="card" aria-labelledby="organizations-title">
        <h2 id="organizations-title">{t("organizations.title")}</h2>
        <FormProblem message={formErrors(switchTo.error).message} />
        {/* Which one is current comes with `me`: without it, every row would offer a switch. */}
        {memberships.isPending || me.isPending ? (
          <Loading />
        ) : memberships.error ? (
          <ErrorState error={memberships.error} onRetry={() => void memberships.refetch()} />
        ) : memberships.items.length === 0 ? (
          <Empty action={<Link to="/account/organizations/new">{t("organizations.create")}</Link>}>
            {t("organizations.empty")}
          </Empty>
        ) : (
          <ul className="account-list">
            {memberships.items.map((membership) => (
              <li key={membership.organization.id}>
                <div>
                  <strong>{membership.organization.name}</strong>{" "}
                  {membership.organization.id === current && <span className="badge good">{t("organizations.current")}</span>}
                  <div className="muted">
                    {t("organizations.role", { role: membership.role })} ·{" "}
                    {t("organizations.joined", { date: format.date(membership.joined_at) })}
                  </div>
                </div>
                {membership.organization.id !== current && (
                  <button type="button" disabled={switchTo.isPending}
                    onClick={() => switchTo.mutate(membership.organization.id)}>
                    {t("organizations.switch", { name: membership.organization.name })}
                  </button>
                )}
              </li>
            ))}
          </ul>
        )}
        {memberships.hasNextPage && (
          <button type="button" onClick={() => void memberships.fetchNextPage()} disabled={memberships.isFetchingNextPage}>
            {t("loadMore", { ns: "common" })}
          </button>
        )}
      </section>
      {dialog}
    </div>
  );
}

export function CreateOrganizationPage() {
  const { t } = useTranslation("account");
  const { run, dialog } = useStepUp();
  const switchTo = useSwitchOrganization(run);
  const [name, setName] = useState("");
  const [slug, setSlug] = useState("");
  const create = useMutation({
    mutationFn: () =>
      run(async () =>
        unwrap(
          await api.POST("/api/v1/organizations", {
            body: { name: name.trim(), ...(slug.trim() ? { slug: slug.trim() } : {}) },
          }),
        ),
      ),
    onSuccess: (organization) => switchTo.mutate(organization.id),
  });
  const { fields, message } = formErrors(create.error ?? switchTo.error);

  function submit(event: FormEvent) {
    event.preventDefault();
    create.mutate();
  }

  return (
    <div className="account stack">
      <header className="page-header">
        <h1>{t("organizations.createTitle")}</h1>
      </header>
      <AccountNav />
      <section className="card">
        <p>{t("organizations.createText")}</p>
        <form onSubmit={submit} noValidate>
          <Field label={t("organizations.name")} name="name" required maxLength={200} autoComplete="organization"
            value={name} onChange={(event) => setName(event.target.value)} error={fields.name} />
          <Field label={t("organizations.slug")} name="slug" value={slug} pattern="[a-z0-9-]*" autoCapitalize="none"
            spellCheck={false} onChange={(event) => setSlug(event.target.value.toLowerCase())} error={fields.slug}
            hint={t("organizations.slugHint")} />
          <FormProblem message={message} />
          <button type="submit" className="primary" disabled={create.isPending || switchTo.isPending || !name.trim()}>
            {t("organizations.submit")}
          </button>
        </form>
      </section>
      {dialog}
    </div>
  );
}
