// Roles as columns, permissions as rows: built-in roles read-only, custom ones edited in place,
// a new one added as a column of its own.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";

import { api } from "../../api/client";
import { unwrap } from "../../api/problem";
import { useMe } from "../../app/me";
import { ConfirmDialog } from "../../components/Dialog";
import { Field, FormProblem, formErrors } from "../../components/Form";
import { QueryState } from "../../components/States";
import {
  canEditRole,
  canToggle,
  keyFromName,
  labelKey,
  permissionGroups,
  sameSet,
  toggled,
  type Permission,
  type Role,
} from "./matrix";
import { TableWrap, patternErrors, useRoles } from "./ui";

interface NewRole {
  name: string;
  key: string;
  keyEdited: boolean;
  description: string;
  permissions: Permission[];
}

const EMPTY_ROLE: NewRole = { name: "", key: "", keyEdited: false, description: "", permissions: [] };

export function RolesPage() {
  const { t } = useTranslation("admin");
  const roles = useRoles();
  const me = useMe();
  const mine = new Set(me.data?.permissions ?? []);
  const [adding, setAdding] = useState<NewRole | null>(null);
  return (
    <div className="stack">
      <div className="row">
        <h2 className="grow">{t("roles.title")}</h2>
        {!adding && (
          <button type="button" className="primary" onClick={() => setAdding(EMPTY_ROLE)}>
            {t("roles.new")}
          </button>
        )}
      </div>
      <p className="muted">{t("roles.intro")}</p>
      <QueryState query={roles}>
        {(data) => <Matrix roles={data} mine={mine} adding={adding} setAdding={setAdding} />}
      </QueryState>
    </div>
  );
}

function Matrix({
  roles,
  mine,
  adding,
  setAdding,
}: {
  roles: Role[];
  mine: ReadonlySet<string>;
  adding: NewRole | null;
  setAdding: (role: NewRole | null) => void;
}) {
  const { t } = useTranslation("admin");
  const client = useQueryClient();
  const [drafts, setDrafts] = useState<Record<string, Permission[]>>({});
  const [deleting, setDeleting] = useState<Role | null>(null);
  const [status, setStatus] = useState("");
  const save = useMutation({
    mutationFn: async (role: Role) =>
      unwrap(
        await api.PATCH("/api/v1/roles/{role_id}", {
          params: { path: { role_id: role.id! } },
          body: { permissions: drafts[role.id!] ?? role.permissions },
        }),
      ),
    onSuccess: (saved) => {
      setStatus(t("roles.saved", { name: saved.name }));
      setDrafts(({ [saved.id!]: _saved, ...rest }) => rest);
      void client.invalidateQueries({ queryKey: ["roles"] });
    },
  });
  const create = useMutation({
    mutationFn: async (role: NewRole) =>
      unwrap(
        await api.POST("/api/v1/roles", {
          body: { key: role.key, name: role.name.trim(), description: role.description, permissions: role.permissions },
        }),
      ),
    onSuccess: (created) => {
      setStatus(t("roles.created", { name: created.name }));
      setAdding(null);
      void client.invalidateQueries({ queryKey: ["roles"] });
    },
  });
  const remove = useMutation({
    mutationFn: async (role: Role) => unwrap(await api.DELETE("/api/v1/roles/{role_id}", { params: { path: { role_id: role.id! } } })),
    onSuccess: (_, role) => {
      setStatus(t("roles.deleted", { name: role.name }));
      setDeleting(null);
      void client.invalidateQueries({ queryKey: ["roles"] });
    },
  });
  const createdProblems = formErrors(create.error);
  const created = {
    message: createdProblems.message,
    fields: patternErrors(create.error, createdProblems.fields, { key: t("roles.keyPattern") }),
  };
  const permissionsOf = (role: Role) => (role.id ? drafts[role.id] : undefined) ?? role.permissions;
  const newName = adding?.name.trim() || t("roles.newColumn");

  function submitNew(event: FormEvent) {
    event.preventDefault();
    if (adding) create.mutate(adding);
  }

  return (
    <>
      {adding && (
        <form id="new-role" className="card new-role" onSubmit={submitNew} noValidate aria-labelledby="new-role-heading">
          <h3 id="new-role-heading">{t("roles.newTitle")}</h3>
          <p className="muted">{t("roles.newHint")}</p>
          <div className="inline-form">
            <Field label={t("roles.name")} value={adding.name} required error={created.fields.name}
              onChange={(event) => {
                const name = event.target.value;
                setAdding({ ...adding, name, key: adding.keyEdited ? adding.key : keyFromName(name) });
              }} />
            <Field label={t("roles.key")} value={adding.key} required error={created.fields.key} hint={t("roles.keyHint")}
              onChange={(event) => setAdding({ ...adding, key: event.target.value, keyEdited: true })} />
            <Field label={t("roles.description")} value={adding.description} error={created.fields.description}
              onChange={(event) => setAdding({ ...adding, description: event.target.value })} />
          </div>
          <FormProblem message={created.message ?? (created.fields.permissions ? created.fields.permissions : null)} />
        </form>
      )}
      <p className="muted" role="status" aria-live="polite">
        {status}
      </p>
      <FormProblem message={formErrors(save.error).message} />
      <TableWrap label={t("roles.caption")} className="matrix-wrap">
        <table className="matrix">
          <caption className="visually-hidden">{t("roles.caption")}</caption>
          <thead>
            <tr>
              <th scope="col">{t("roles.permission")}</th>
              {roles.map((role) => (
                <th scope="col" key={role.key}>
                  <span className="role-name">{role.name}</span>
                  <span className="badge">{role.built_in ? t("roles.builtIn") : t("roles.custom")}</span>
                </th>
              ))}
              {adding && (
                <th scope="col" className="new-column">
                  <span className="role-name">{newName}</span>
                  <span className="badge good">{t("roles.new")}</span>
                </th>
              )}
            </tr>
          </thead>
          <tbody>
            {permissionGroups().map((group) =>
              group.permissions.map((permission, index) => (
                <tr key={permission} className={index === 0 ? "group-start" : undefined}>
                  <th scope="row">
                    <span>{t(labelKey(permission))}</span>
                    <code className="muted">{permission}</code>
                  </th>
                  {roles.map((role) => {
                    const editable = canEditRole(role, mine);
                    const held = permissionsOf(role).includes(permission);
                    return (
                      <td key={role.key}>
                        <input
                          type="checkbox"
                          checked={held}
                          disabled={!canToggle(editable, permission, mine)}
                          aria-label={t("roles.cell", { permission: t(labelKey(permission)), role: role.name })}
                          onChange={(event) =>
                            setDrafts({ ...drafts, [role.id!]: toggled(permissionsOf(role), permission, event.target.checked) })
                          }
                        />
                      </td>
                    );
                  })}
                  {adding && (
                    <td className="new-column">
                      <input
                        type="checkbox"
                        form="new-role"
                        checked={adding.permissions.includes(permission)}
                        disabled={!mine.has(permission)}
                        aria-label={t("roles.cell", { permission: t(labelKey(permission)), role: newName })}
                        onChange={(event) =>
                          setAdding({ ...adding, permissions: toggled(adding.permissions, permission, event.target.checked) })
                        }
                      />
                    </td>
                  )}
                </tr>
              )),
            )}
          </tbody>
          <tfoot>
            <tr>
              <th scope="row">{t("actions")}</th>
              {roles.map((role) => {
                const dirty = !sameSet(permissionsOf(role), role.permissions);
                return (
                  <td key={role.key}>
                    {canEditRole(role, mine) ? (
                      <div className="cell-actions">
                        <button type="button" className="primary" disabled={!dirty || save.isPending} onClick={() => save.mutate(role)}
                          aria-label={t("roles.saveNamed", { name: role.name })}>
                          {t("save", { ns: "common" })}
                        </button>
                        <button type="button" className="danger" onClick={() => setDeleting(role)}
                          aria-label={t("roles.deleteNamed", { name: role.name })}>
                          {t("delete", { ns: "common" })}
                        </button>
                      </div>
                    ) : (
                      <span className="muted">{role.built_in ? t("roles.fixed") : t("roles.beyondYou")}</span>
                    )}
                  </td>
                );
              })}
              {adding && (
                <td className="new-column">
                  <div className="cell-actions">
                    <button type="submit" form="new-role" className="primary" disabled={create.isPending}>
                      {t("roles.create")}
                    </button>
                    <button type="button" onClick={() => { setAdding(null); create.reset(); }}>
                      {t("roles.discard")}
                    </button>
                  </div>
                </td>
              )}
            </tr>
          </tfoot>
        </table>
      </TableWrap>
      <ConfirmDialog
        open={deleting !== null}
        title={t("roles.deleteTitle")}
        confirmLabel={t("delete", { ns: "common" })}
        pending={remove.isPending}
        error={remove.error}
        onConfirm={() => deleting && remove.mutate(deleting)}
        onClose={() => {
          setDeleting(null);
          remove.reset();
        }}
      >
        {t("roles.deleteText", { name: deleting?.name ?? "" })}
      </ConfirmDialog>
    </>
  );
}
