// Teams: create, rename, delete, and who belongs to each.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";

import { api, type Schemas } from "../../api/client";
import { unwrap } from "../../api/problem";
import { ConfirmDialog } from "../../components/Dialog";
import { Field, FormProblem, SelectField, formErrors } from "../../components/Form";
import { useCursorList } from "../../components/lists";
import { QueryState } from "../../components/States";

type Team = Schemas["TeamRead"];

export function TeamsPage() {
  const { t } = useTranslation("admin");
  const teams = useCursorList(["teams"], async (cursor) =>
    unwrap(await api.GET("/api/v1/teams", { params: { query: { cursor, limit: 50 } } })),
  );
  return (
    <div className="stack">
      <NewTeam />
      <section aria-labelledby="teams-heading">
        <h2 id="teams-heading">{t("teams.title")}</h2>
        <QueryState query={teams} isEmpty={() => teams.items.length === 0} empty={t("teams.empty")}>
          {() => (
            <div className="stack">
              {teams.items.map((team) => (
                <TeamCard key={team.id} team={team} />
              ))}
              {teams.hasNextPage && (
                <button type="button" onClick={() => void teams.fetchNextPage()} disabled={teams.isFetchingNextPage}>
                  {t("loadMore", { ns: "common" })}
                </button>
              )}
            </div>
          )}
        </QueryState>
      </section>
    </div>
  );
}

function NewTeam() {
  const { t } = useTranslation("admin");
  const client = useQueryClient();
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const create = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/teams", { body: { name: name.trim(), description } })),
    onSuccess: () => {
      setName("");
      setDescription("");
      void client.invalidateQueries({ queryKey: ["teams"] });
    },
  });
  const { fields, message } = formErrors(create.error);
  function submit(event: FormEvent) {
    event.preventDefault();
    create.mutate();
  }
  return (
    <section className="card" aria-labelledby="new-team-heading">
      <h2 id="new-team-heading">{t("teams.new")}</h2>
      <form className="inline-form" onSubmit={submit} noValidate>
        <Field label={t("teams.name")} value={name} required onChange={(event) => setName(event.target.value)} error={fields.name} />
        <Field label={t("teams.description")} value={description} onChange={(event) => setDescription(event.target.value)}
          error={fields.description} />
        <button type="submit" className="primary" disabled={create.isPending}>
          {t("teams.create")}
        </button>
      </form>
      <FormProblem message={message} />
    </section>
  );
}

function TeamCard({ team }: { team: Team }) {
  const { t } = useTranslation("admin");
  const client = useQueryClient();
  const [editing, setEditing] = useState(false);
  const [name, setName] = useState(team.name);
  const [description, setDescription] = useState(team.description);
  const [deleting, setDeleting] = useState(false);
  const update = useMutation({
    mutationFn: async () =>
      unwrap(await api.PATCH("/api/v1/teams/{team_id}", { params: { path: { team_id: team.id } }, body: { name: name.trim(), description } })),
    onSuccess: () => {
      setEditing(false);
      void client.invalidateQueries({ queryKey: ["teams"] });
    },
  });
  const remove = useMutation({
    mutationFn: async () => unwrap(await api.DELETE("/api/v1/teams/{team_id}", { params: { path: { team_id: team.id } } })),
    onSuccess: () => {
      setDeleting(false);
      void client.invalidateQueries({ queryKey: ["teams"] });
    },
  });
  const { fields, message } = formErrors(update.error);
  const headingId = `team-${team.id}`;
  return (
    <article className="card" aria-labelledby={headingId}>
      {editing ? (
        <form
          onSubmit={(event) => {
            event.preventDefault();
            update.mutate();
          }}
          noValidate
        >
          <h3 id={headingId} className="visually-hidden">
            {team.name}
          </h3>
          <Field label={t("teams.name")} value={name} required onChange={(event) => setName(event.target.value)} error={fields.name} />
          <Field label={t("teams.description")} value={description} onChange={(event) => setDescription(event.target.value)}
            error={fields.description} />
          <FormProblem message={message} />
          <div className="row">
            <button type="submit" className="primary" disabled={update.isPending}>
              {t("save", { ns: "common" })}
            </button>
            <button type="button" onClick={() => setEditing(false)}>
              {t("cancel", { ns: "common" })}
            </button>
          </div>
        </form>
      ) : (
        <div className="row team-header">
          <div className="grow">
            <h3 id={headingId}>{team.name}</h3>
            {team.description && <p className="muted">{team.description}</p>}
          </div>
          <button type="button" onClick={() => setEditing(true)} aria-label={t("teams.editNamed", { name: team.name })}>
            {t("edit", { ns: "common" })}
          </button>
          <button type="button" className="danger" onClick={() => setDeleting(true)} aria-label={t("teams.deleteNamed", { name: team.name })}>
            {t("delete", { ns: "common" })}
          </button>
        </div>
      )}
      <TeamMembers team={team} />
      <ConfirmDialog
        open={deleting}
        title={t("teams.deleteTitle")}
        confirmLabel={t("delete", { ns: "common" })}
        pending={remove.isPending}
        error={remove.error}
        onConfirm={() => remove.mutate()}
        onClose={() => {
          setDeleting(false);
          remove.reset();
        }}
      >
        {t("teams.deleteText", { name: team.name })}
      </ConfirmDialog>
    </article>
  );
}

function TeamMembers({ team }: { team: Team }) {
  const { t } = useTranslation("admin");
  const client = useQueryClient();
  const key = ["teams", team.id, "members"];
  const members = useCursorList(key, async (cursor) =>
    unwrap(await api.GET("/api/v1/teams/{team_id}/members", { params: { path: { team_id: team.id }, query: { cursor, limit: 100 } } })),
  );
  const everyone = useCursorList(["members"], async (cursor) =>
    unwrap(await api.GET("/api/v1/members", { params: { query: { cursor, limit: 50 } } })),
  );
  const [chosen, setChosen] = useState("");
  const add = useMutation({
    mutationFn: async (userId: string) =>
      unwrap(await api.PUT("/api/v1/teams/{team_id}/members/{user_id}", { params: { path: { team_id: team.id, user_id: userId } } })),
    onSuccess: () => {
      setChosen("");
      void client.invalidateQueries({ queryKey: key });
    },
  });
  const remove = useMutation({
    mutationFn: async (userId: string) =>
      unwrap(await api.DELETE("/api/v1/teams/{team_id}/members/{user_id}", { params: { path: { team_id: team.id, user_id: userId } } })),
    onSuccess: () => void client.invalidateQueries({ queryKey: key }),
  });
  const inTeam = new Set(members.items.map((member) => member.user_id));
  const outside = everyone.items.filter((member) => !inTeam.has(member.user_id));
  return (
    <div className="team-members">
      <QueryState query={members} isEmpty={() => members.items.length === 0} empty={t("teams.noMembers")}>
        {() => (
          <ul className="plain-list">
            {members.items.map((member) => (
              <li key={member.user_id} className="row">
                <span className="grow">
                  {member.name} <span className="muted">{member.email}</span>
                </span>
                <button type="button" className="link-button" disabled={remove.isPending}
                  onClick={() => remove.mutate(member.user_id)}
                  aria-label={t("teams.removeMember", { name: member.name, team: team.name })}>
                  {t("teams.remove")}
                </button>
              </li>
            ))}
          </ul>
        )}
      </QueryState>
      {outside.length > 0 && (
        <form
          className="inline-form"
          onSubmit={(event) => {
            event.preventDefault();
            if (chosen) add.mutate(chosen);
          }}
        >
          <SelectField label={t("teams.addMember", { team: team.name })} value={chosen} onChange={(event) => setChosen(event.target.value)}>
            <option value="">{t("teams.choose")}</option>
            {outside.map((member) => (
              <option key={member.user_id} value={member.user_id}>
                {member.name} ({member.email})
              </option>
            ))}
          </SelectField>
          <button type="submit" disabled={!chosen || add.isPending}>
            {t("teams.add")}
          </button>
        </form>
      )}
      <FormProblem message={formErrors(add.error ?? remove.error).message} />
    </div>
  );
}
