// Members and their roles, pending invitations, the organization's settings and its owner.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";

import { api, type Schemas } from "../../api/client";
import { unwrap } from "../../api/problem";
import { useCan, useMe } from "../../app/me";
import { ConfirmDialog } from "../../components/Dialog";
import { CheckboxField, Field, FormProblem, SelectField, formErrors } from "../../components/Form";
import { useCursorList } from "../../components/lists";
import { QueryState } from "../../components/States";
import { useFormat } from "../../i18n/format";
import { TableWrap, errorFor, patternErrors, roleLabel, splitList, useRoles } from "./ui";

type Member = Schemas["MemberRead"];
type Invitation = Schemas["InvitationRead"];
type Organization = Schemas["OrganizationRead"];

export function MembersPage() {
  const me = useMe();
  const manageOrganization = useCan("organization:manage");
  return (
    <div className="stack">
      <MembersSection />
      <InvitationsSection />
      {manageOrganization && <SettingsSection />}
      {me.data?.role === "owner" && <OwnershipSection />}
    </div>
  );
}

function useMembers() {
  return useCursorList(["members"], async (cursor) =>
    unwrap(await api.GET("/api/v1/members", { params: { query: { cursor, limit: 50 } } })),
  );
}

function MembersSection() {
  const { t } = useTranslation("admin");
  const format = useFormat();
  const me = useMe();
  const manage = useCan("members:manage");
  const roles = useRoles();
  const client = useQueryClient();
  const members = useMembers();
  const [status, setStatus] = useState("");
  const [removing, setRemoving] = useState<Member | null>(null);
  const changeRole = useMutation({
    mutationFn: async ({ member, role }: { member: Member; role: string }) =>
      unwrap(await api.PATCH("/api/v1/members/{user_id}", { params: { path: { user_id: member.user_id } }, body: { role } })),
    onSuccess: (member) => {
      setStatus(t("members.roleChanged", { name: member.name, role: roleLabel(roles.data, member.role) }));
      void client.invalidateQueries({ queryKey: ["members"] });
    },
  });
  const remove = useMutation({
    mutationFn: async (member: Member) =>
      unwrap(await api.DELETE("/api/v1/members/{user_id}", { params: { path: { user_id: member.user_id } } })),
    onSuccess: (_, member) => {
      setStatus(t("members.removed", { name: member.name }));
      setRemoving(null);
      void client.invalidateQueries({ queryKey: ["members"] });
    },
  });
  const self = me.data?.user?.id;
  return (
    <section className="card" aria-labelledby="members-heading">
      <h2 id="members-heading">{t("members.title")}</h2>
      <p className="muted" role="status" aria-live="polite">
        {status}
      </p>
      <FormProblem message={formErrors(changeRole.error).message} />
      <QueryState query={members} isEmpty={() => members.items.length === 0} empty={t("members.empty")}>
        {() => (
          <>
            <TableWrap label={t("members.title")}>
              <table>
                <thead>
                  <tr>
                    <th scope="col">{t("members.name")}</th>
                    <th scope="col">{t("members.email")}</th>
                    <th scope="col">{t("members.role")}</th>
                    <th scope="col">{t("members.joined")}</th>
                    {manage && <th scope="col">{t("actions")}</th>}
                  </tr>
                </thead>
                <tbody>
                  {members.items.map((member) => {
                    const isSelf = member.user_id === self;
                    const editable = manage && !isSelf && member.role !== "owner";
                    return (
                      <tr key={member.user_id}>
                        <td>
                          {member.name}
                          {isSelf && <span className="badge">{t("members.you")}</span>}
                        </td>
                        <td>{member.email}</td>
                        <td>
                          {editable ? (
                            <label>
                              <span className="visually-hidden">{t("members.roleOf", { name: member.name })}</span>
                              <select
                                value={member.role}
                                disabled={changeRole.isPending}
                                onChange={(event) => changeRole.mutate({ member, role: event.target.value })}
                              >
                                {(roles.data ?? [{ key: member.role, name: member.role }]).map((role) => (
                                  <option key={role.key} value={role.key}>
                                    {role.name}
                                  </option>
                                ))}
                              </select>
                            </label>
                          ) : (
                            roleLabel(roles.data, member.role)
                          )}
                        </td>
                        <td>{format.date(member.joined_at)}</td>
                        {manage && (
                          <td>
                            {editable && (
                              <button type="button" className="danger" onClick={() => setRemoving(member)}
                                aria-label={t("members.removeNamed", { name: member.name })}>
                                {t("members.remove")}
                              </button>
                            )}
                          </td>
                        )}
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </TableWrap>
            {members.hasNextPage && (
              <button type="button" onClick={() => void members.fetchNextPage()} disabled={members.isFetchingNextPage}>
                {t("loadMore", { ns: "common" })}
              </button>
            )}
          </>
        )}
      </QueryState>
      <ConfirmDialog
        open={removing !== null}
        title={t("members.removeTitle")}
        confirmLabel={t("members.remove")}
        pending={remove.isPending}
        error={remove.error}
        onConfirm={() => removing && remove.mutate(removing)}
        onClose={() => {
          setRemoving(null);
          remove.reset();
        }}
      >
        {t("members.removeText", { name: removing?.name ?? "" })}
      </ConfirmDialog>
    </section>
  );
}

function InvitationsSection() {
  const { t } = useTranslation("admin");
  const format = useFormat();
  const manage = useCan("members:manage");
  const roles = useRoles();
  const client = useQueryClient();
  const invitations = useCursorList(["invitations"], async (cursor) =>
    unwrap(await api.GET("/api/v1/invitations", { params: { query: { cursor, limit: 50 } } })),
  );
  const [email, setEmail] = useState("");
  const [role, setRole] = useState("member");
  const [status, setStatus] = useState("");
  const [revoking, setRevoking] = useState<Invitation | null>(null);
  const invite = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/invitations", { body: { email: email.trim(), role } })),
    onSuccess: (invitation) => {
      setStatus(t("invitations.sent", { email: invitation.email }));
      setEmail("");
      void client.invalidateQueries({ queryKey: ["invitations"] });
    },
  });
  const revoke = useMutation({
    mutationFn: async (invitation: Invitation) =>
      unwrap(await api.DELETE("/api/v1/invitations/{invitation_id}", { params: { path: { invitation_id: invitation.id } } })),
    onSuccess: (_, invitation) => {
      setStatus(t("invitations.revoked", { email: invitation.email }));
      setRevoking(null);
      void client.invalidateQueries({ queryKey: ["invitations"] });
    },
  });
  const { fields, message } = formErrors(invite.error);

  function submit(event: FormEvent) {
    event.preventDefault();
    setStatus("");
    invite.mutate();
  }

  return (
    <section className="card" aria-labelledby="invitations-heading">
      <h2 id="invitations-heading">{t("invitations.title")}</h2>
      {manage && (
        <form className="inline-form" onSubmit={submit} noValidate>
          <Field label={t("invitations.email")} type="email" autoComplete="off" required value={email}
            onChange={(event) => setEmail(event.target.value)} error={fields.email} />
          <SelectField label={t("invitations.role")} value={role} onChange={(event) => setRole(event.target.value)} error={fields.role}>
            {(roles.data ?? [{ key: "member", name: "Member" }]).map((option) => (
              <option key={option.key} value={option.key}>
                {option.name}
              </option>
            ))}
          </SelectField>
          <button type="submit" className="primary" disabled={invite.isPending}>
            {t("invitations.send")}
          </button>
        </form>
      )}
      <FormProblem message={message} />
      <p className="muted" role="status" aria-live="polite">
        {status}
      </p>
      <QueryState query={invitations} isEmpty={() => invitations.items.length === 0} empty={t("invitations.empty")}>
        {() => (
          <>
            <TableWrap label={t("invitations.title")}>
              <table>
                <thead>
                  <tr>
                    <th scope="col">{t("invitations.email")}</th>
                    <th scope="col">{t("invitations.role")}</th>
                    <th scope="col">{t("invitations.expires")}</th>
                    {manage && <th scope="col">{t("actions")}</th>}
                  </tr>
                </thead>
                <tbody>
                  {invitations.items.map((invitation) => (
                    <tr key={invitation.id}>
                      <td>{invitation.email}</td>
                      <td>{roleLabel(roles.data, invitation.role)}</td>
                      <td>{format.dateTime(invitation.expires_at)}</td>
                      {manage && (
                        <td>
                          <button type="button" className="danger" onClick={() => setRevoking(invitation)}
                            aria-label={t("invitations.revokeNamed", { email: invitation.email })}>
                            {t("invitations.revoke")}
                          </button>
                        </td>
                      )}
                    </tr>
                  ))}
                </tbody>
              </table>
            </TableWrap>
            {invitations.hasNextPage && (
              <button type="button" onClick={() => void invitations.fetchNextPage()} disabled={invitations.isFetchingNextPage}>
                {t("loadMore", { ns: "common" })}
              </button>
            )}
          </>
        )}
      </QueryState>
      <ConfirmDialog
        open={revoking !== null}
        title={t("invitations.revokeTitle")}
        confirmLabel={t("invitations.revoke")}
        pending={revoke.isPending}
        error={revoke.error}
        onConfirm={() => revoking && revoke.mutate(revoking)}
        onClose={() => {
          setRevoking(null);
          revoke.reset();
        }}
      >
        {t("invitations.revokeText", { email: revoking?.email ?? "" })}
      </ConfirmDialog>
    </section>
  );
}

function SettingsSection() {
  const { t } = useTranslation("admin");
  const organization = useQuery({
    queryKey: ["organization"],
    queryFn: async () => unwrap(await api.GET("/api/v1/organization")),
  });
  return (
    <section className="card" aria-labelledby="settings-heading">
      <h2 id="settings-heading">{t("settings.title")}</h2>
      <QueryState query={organization}>{(data) => <SettingsForm key={data.id} organization={data} />}</QueryState>
    </section>
  );
}

function SettingsForm({ organization }: { organization: Organization }) {
  const { t } = useTranslation("admin");
  const client = useQueryClient();
  const roles = useRoles();
  const [name, setName] = useState(organization.name);
  const [signupPolicy, setSignupPolicy] = useState(organization.signup_policy);
  const [domains, setDomains] = useState(organization.allowed_email_domains.join(", "));
  const [mfaRequired, setMfaRequired] = useState(organization.mfa_required);
  const [lifetime, setLifetime] = useState(organization.session_lifetime_hours?.toString() ?? "");
  const [defaultRole, setDefaultRole] = useState(organization.default_role);
  const save = useMutation({
    mutationFn: async () => {
      const body = settingsChanges(organization, {
        name: name.trim(),
        signup_policy: signupPolicy,
        allowed_email_domains: splitList(domains),
        mfa_required: mfaRequired,
        session_lifetime_hours: lifetime.trim() === "" ? null : Number(lifetime),
        default_role: defaultRole,
      });
      if (Object.keys(body).length === 0) return organization;
      return unwrap(await api.PATCH("/api/v1/organization", { body }));
    },
    onSuccess: (saved) => {
      client.setQueryData(["organization"], saved);
      void client.invalidateQueries({ queryKey: ["me"] });
    },
  });
  const problems = formErrors(save.error);
  const message = problems.message;
  const fields = patternErrors(save.error, problems.fields, { allowed_email_domains: t("domainPattern") });

  function submit(event: FormEvent) {
    event.preventDefault();
    save.mutate();
  }

  return (
    <form onSubmit={submit} noValidate className="settings-form">
      <Field label={t("settings.name")} value={name} required onChange={(event) => setName(event.target.value)} error={fields.name} />
      <SelectField label={t("settings.signupPolicy")} value={signupPolicy} error={fields.signup_policy}
        onChange={(event) => setSignupPolicy(event.target.value as Organization["signup_policy"])}>
        <option value="invite_only">{t("settings.policy.invite_only")}</option>
        <option value="open">{t("settings.policy.open")}</option>
        <option value="email_domain">{t("settings.policy.email_domain")}</option>
      </SelectField>
      <Field label={t("settings.domains")} value={domains} hint={t("settings.domainsHint")} placeholder="example.com"
        onChange={(event) => setDomains(event.target.value)} error={errorFor(fields, "allowed_email_domains")} />
      <SelectField label={t("settings.defaultRole")} value={defaultRole} error={fields.default_role}
        onChange={(event) => setDefaultRole(event.target.value)}>
        {(roles.data ?? [{ key: defaultRole, name: defaultRole }]).map((role) => (
          <option key={role.key} value={role.key}>
            {role.name}
          </option>
        ))}
      </SelectField>
      <CheckboxField label={t("settings.mfaRequired")} checked={mfaRequired} onChange={setMfaRequired}
        hint={t("settings.mfaHint")} error={fields.mfa_required} />
      <Field label={t("settings.lifetime")} type="number" inputMode="numeric" min={1} max={2160} value={lifetime}
        hint={t("settings.lifetimeHint")} onChange={(event) => setLifetime(event.target.value)} error={fields.session_lifetime_hours} />
      <FormProblem message={message} />
      <div className="row">
        <button type="submit" className="primary" disabled={save.isPending}>
          {t("save", { ns: "common" })}
        </button>
        <span role="status" aria-live="polite" className="muted">
          {save.isSuccess ? t("saved", { ns: "common" }) : ""}
        </span>
      </div>
    </form>
  );
}

type Settings = Required<Pick<Schemas["OrganizationUpdate"], "name" | "signup_policy" | "allowed_email_domains" | "mfa_required" | "session_lifetime_hours" | "default_role">>;

/** Only what differs from the saved settings: the audit log then says what really changed. */
export function settingsChanges(saved: Organization, form: Settings): Schemas["OrganizationUpdate"] {
  const changes: Schemas["OrganizationUpdate"] = {};
  if (form.name !== saved.name) changes.name = form.name;
  if (form.signup_policy !== saved.signup_policy) changes.signup_policy = form.signup_policy;
  if (form.allowed_email_domains?.join(",") !== saved.allowed_email_domains.join(",")) changes.allowed_email_domains = form.allowed_email_domains;
  if (form.mfa_required !== saved.mfa_required) changes.mfa_required = form.mfa_required;
  if (form.session_lifetime_hours !== saved.session_lifetime_hours) changes.session_lifetime_hours = form.session_lifetime_hours;
  if (form.default_role !== saved.default_role) changes.default_role = form.default_role;
  return changes;
}

function OwnershipSection() {
  const { t } = useTranslation("admin");
  const me = useMe();
  const client = useQueryClient();
  const members = useMembers();
  const [target, setTarget] = useState("");
  const [confirming, setConfirming] = useState(false);
  const candidates = members.items.filter((member) => member.user_id !== me.data?.user?.id);
  const chosen = candidates.find((member) => member.user_id === target);
  const transfer = useMutation({
    mutationFn: async () =>
      unwrap(await api.POST("/api/v1/organization/transfer-ownership", { body: { user_id: target } })),
    onSuccess: () => {
      setConfirming(false);
      void client.invalidateQueries({ queryKey: ["me"] });
      void client.invalidateQueries({ queryKey: ["members"] });
    },
  });
  return (
    <section className="card" aria-labelledby="ownership-heading">
      <h2 id="ownership-heading">{t("ownership.title")}</h2>
      <p className="muted">{t("ownership.text")}</p>
      {candidates.length === 0 ? (
        <p>{t("ownership.nobody")}</p>
      ) : (
        <form
          className="inline-form"
          onSubmit={(event) => {
            event.preventDefault();
            if (chosen) setConfirming(true);
          }}
        >
          <SelectField label={t("ownership.newOwner")} value={target} onChange={(event) => setTarget(event.target.value)}>
            <option value="">{t("ownership.choose")}</option>
            {candidates.map((member) => (
              <option key={member.user_id} value={member.user_id}>
                {member.name} ({member.email})
              </option>
            ))}
          </SelectField>
          <button type="submit" className="danger" disabled={!chosen}>
            {t("ownership.transfer")}
          </button>
        </form>
      )}
      <ConfirmDialog
        open={confirming}
        title={t("ownership.confirmTitle")}
        confirmLabel={t("ownership.transfer")}
        pending={transfer.isPending}
        error={transfer.error}
        onConfirm={() => transfer.mutate()}
        onClose={() => {
          setConfirming(false);
          transfer.reset();
        }}
      >
        {t("ownership.confirmText", { name: chosen?.name ?? "" })}
      </ConfirmDialog>
    </section>
  );
}
