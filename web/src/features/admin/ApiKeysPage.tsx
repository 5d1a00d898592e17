// API keys: made with a subset of the creator's permissions, shown whole exactly once, revoked
// after a confirmation.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";

import { api, type Schemas } from "../../api/client";
import { unwrap } from "../../api/problem";
import { useMe } from "../../app/me";
import { CopyButton } from "../../components/CopyButton";
import { ConfirmDialog, Dialog } from "../../components/Dialog";
import { Field, FormProblem, formErrors } from "../../components/Form";
import { useCursorList } from "../../components/lists";
import { QueryState } from "../../components/States";
import { useFormat } from "../../i18n/format";
import { PERMISSIONS, labelKey, toggled, type Permission } from "./matrix";
import { errorFor, TableWrap } from "./ui";

type ApiKey = Schemas["ApiKeyRead"];

export function ApiKeysPage() {
  const { t } = useTranslation("admin");
  const format = useFormat();
  const client = useQueryClient();
  const keys = useCursorList(["api-keys"], async (cursor) =>
    unwrap(await api.GET("/api/v1/api-keys", { params: { query: { cursor, limit: 50 } } })),
  );
  const [created, setCreated] = useState<Schemas["ApiKeyCreated"] | null>(null);
  const [revoking, setRevoking] = useState<ApiKey | null>(null);
  const [status, setStatus] = useState("");
  const revoke = useMutation({
    mutationFn: async (key: ApiKey) => unwrap(await api.DELETE("/api/v1/api-keys/{key_id}", { params: { path: { key_id: key.id } } })),
    onSuccess: (_, key) => {
      setStatus(t("keys.revoked", { name: key.name }));
      setRevoking(null);
      void client.invalidateQueries({ queryKey: ["api-keys"] });
    },
  });
  return (
    <div className="stack">
      <NewKey
        onCreated={(key) => {
          setCreated(key);
          void client.invalidateQueries({ queryKey: ["api-keys"] });
        }}
      />
      <section aria-labelledby="keys-heading">
        <h2 id="keys-heading">{t("keys.title")}</h2>
        <p className="muted" role="status" aria-live="polite">
          {status}
        </p>
        <QueryState query={keys} isEmpty={() => keys.items.length === 0} empty={t("keys.empty")}>
          {() => (
            <>
              <TableWrap label={t("keys.title")}>
                <table>
                  <thead>
                    <tr>
                      <th scope="col">{t("keys.name")}</th>
                      <th scope="col">{t("keys.prefix")}</th>
                      <th scope="col">{t("keys.permissions")}</th>
                      <th scope="col">{t("keys.created")}</th>
                      <th scope="col">{t("keys.expires")}</th>
                      <th scope="col">{t("keys.lastUsed")}</th>
                      <th scope="col">{t("actions")}</th>
                    </tr>
                  </thead>
                  <tbody>
                    {keys.items.map((key) => (
                      <tr key={key.id}>
                        <td>{key.name}</td>
                        <td>
                          <code>{key.prefix}…</code>
                        </td>
                        <td>
                          <span className="permission-list">{key.permissions.join(", ")}</span>
                        </td>
                        <td>{format.date(key.created_at)}</td>
                        <td>{key.expires_at ? format.date(key.expires_at) : t("keys.never")}</td>
                        <td>{key.last_used_at ? format.dateTime(key.last_used_at) : t("keys.neverUsed")}</td>
                        <td>
                          {key.revoked_at ? (
                            <span className="badge bad">{t("keys.revokedBadge")}</span>
                          ) : (
                            <button type="button" className="danger" onClick={() => setRevoking(key)}
                              aria-label={t("keys.revokeNamed", { name: key.name })}>
                              {t("keys.revoke")}
                            </button>
                          )}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </TableWrap>
              {keys.hasNextPage && (
                <button type="button" onClick={() => void keys.fetchNextPage()} disabled={keys.isFetchingNextPage}>
                  {t("loadMore", { ns: "common" })}
                </button>
              )}
            </>
          )}
        </QueryState>
      </section>
      <Dialog open={created !== null} title={t("keys.createdTitle")} onClose={() => setCreated(null)}>
        {created && (
          <div className="stack">
            <p className="warning" role="alert">
              {t("keys.onceWarning")}
            </p>
            <label className="secret">
              <span>{t("keys.secretLabel", { name: created.name })}</span>
              <input readOnly value={created.key} onFocus={(event) => event.target.select()} />
            </label>
            <div className="row dialog-actions">
              <CopyButton text={created.key} label={t("keys.copy")} />
              <button type="button" className="primary" onClick={() => setCreated(null)}>
                {t("keys.done")}
              </button>
            </div>
          </div>
        )}
      </Dialog>
      <ConfirmDialog
        open={revoking !== null}
        title={t("keys.revokeTitle")}
        confirmLabel={t("keys.revoke")}
        pending={revoke.isPending}
        error={revoke.error}
        onConfirm={() => revoking && revoke.mutate(revoking)}
        onClose={() => {
          setRevoking(null);
          revoke.reset();
        }}
      >
        {t("keys.revokeText", { name: revoking?.name ?? "" })}
      </ConfirmDialog>
    </div>
  );
}

function NewKey({ onCreated }: { onCreated: (key: Schemas["ApiKeyCreated"]) => void }) {
  const { t } = useTranslation("admin");
  const me = useMe();
  const mine = PERMISSIONS.filter((permission) => me.data?.permissions.includes(permission));
  const [name, setName] = useState("");
  const [permissions, setPermissions] = useState<Permission[]>(["materials:read"]);
  const [expires, setExpires] = useState("");
  const create = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.POST("/api/v1/api-keys", {
          body: {
            name: name.trim(),
            permissions,
            // The end of the chosen day, in the person's own time zone.
            expires_at: expires ? new Date(`${expires}T23:59:59`).toISOString() : null,
          },
        }),
      ),
    onSuccess: (key) => {
      setName("");
      setExpires("");
      onCreated(key);
    },
  });
  const { fields, message } = formErrors(create.error);
  const permissionsError = errorFor(fields, "permissions");

  function submit(event: FormEvent) {
    event.preventDefault();
    create.mutate();
  }

  return (
    <section className="card" aria-labelledby="new-key-heading">
      <h2 id="new-key-heading">{t("keys.new")}</h2>
      <form onSubmit={submit} noValidate>
        <div className="inline-form">
          <Field label={t("keys.name")} value={name} required onChange={(event) => setName(event.target.value)} error={fields.name} />
          <Field label={t("keys.expiresOn")} type="date" value={expires} hint={t("keys.expiresHint")}
            onChange={(event) => setExpires(event.target.value)} error={fields.expires_at} />
        </div>
        <fieldset className={`permission-picker${permissionsError ? " field-invalid" : ""}`} aria-describedby={permissionsError ? "key-permissions-error" : undefined}>
          <legend>{t("keys.permissions")}</legend>
          <div className="checks">
            {mine.map((permission) => (
              <label key={permission} className="check">
                <input type="checkbox" checked={permissions.includes(permission)}
                  onChange={(event) => setPermissions(toggled(permissions, permission, event.target.checked))} />
                <span>
                  {t(labelKey(permission))} <code className="muted">{permission}</code>
                </span>
              </label>
            ))}
          </div>
          {permissionsError && (
            <small id="key-permissions-error" className="field-error">
              {permissionsError}
            </small>
          )}
        </fieldset>
        <FormProblem message={message} />
        <button type="submit" className="primary" disabled={create.isPending}>
          {t("keys.create")}
        </button>
      </form>
    </section>
  );
}
