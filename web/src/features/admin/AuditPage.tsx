// The audit log: who did what and when, filtered, newest first, a page at a time.
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";

import { api, type Schemas } from "../../api/client";
import { unwrap } from "../../api/problem";
import { useCan } from "../../app/me";
import { Field, SelectField } from "../../components/Form";
import { useCursorList } from "../../components/lists";
import { QueryState } from "../../components/States";
import { useFormat } from "../../i18n/format";
import { TableWrap } from "./ui";

type AuditEvent = Schemas["AuditEventRead"];

export interface AuditFilters {
  action: string;
  actorId: string;
  outcome: "" | "success" | "failure";
  since: string;
  until: string;
}

const NO_FILTERS: AuditFilters = { action: "", actorId: "", outcome: "", since: "", until: "" };

/** The query the API takes for the filters a person set; blank ones are left out. */
export function auditQuery(filters: AuditFilters) {
  const localInstant = (value: string) => (value ? new Date(value).toISOString() : undefined);
  return {
    action: filters.action.trim() || undefined,
    actor_id: filters.actorId.trim() || undefined,
    outcome: filters.outcome || undefined,
    since: localInstant(filters.since),
    until: localInstant(filters.until),
  };
}

/** `{email: "a@b.c", changed: ["name", "role"]}` -> `email: a@b.c · changed: name, role`. */
export function detailsText(details: Record<string, unknown>): string {
  return Object.entries(details)
    .map(([key, value]) => `${key}: ${readable(value)}`)
    .join(" · ");
}

function readable(value: unknown): string {
  if (typeof value === "string") return value;
  if (Array.isArray(value) && value.every((item) => typeof item === "string")) return value.join(", ");
  return JSON.stringify(value);
}

export function AuditPage() {
  const { t } = useTranslation("admin");
  const format = useFormat();
  const [draft, setDraft] = useState<AuditFilters>(NO_FILTERS);
  const [filters, setFilters] = useState<AuditFilters>(NO_FILTERS);
  const query = auditQuery(filters);
  const events = useCursorList(["audit", query], async (cursor) =>
    unwrap(await api.GET("/api/v1/audit-events", { params: { query: { ...query, cursor, limit: 50 } } })),
  );
  const readsMembers = useCan("members:read");
  const members = useCursorList(
    ["members"],
    async (cursor) => unwrap(await api.GET("/api/v1/members", { params: { query: { cursor, limit: 50 } } })),
    readsMembers,
  );
  const names = new Map(members.items.map((member) => [member.user_id, member.name]));
  const who = (event: AuditEvent) =>
    (event.actor_type === "user" && event.actor_id && names.get(event.actor_id)) || event.actor;

  function submit(event: FormEvent) {
    event.preventDefault();
    setFilters(draft);
  }

  return (
    <div className="stack">
      <section className="card" aria-labelledby="audit-filters-heading">
        <h2 id="audit-filters-heading">{t("audit.filters")}</h2>
        <form className="inline-form" onSubmit={submit}>
          <Field label={t("audit.action")} value={draft.action} hint={t("audit.actionHint")}
            onChange={(event) => setDraft({ ...draft, action: event.target.value })} />
          <Field label={t("audit.actor")} value={draft.actorId} hint={t("audit.actorHint")}
            onChange={(event) => setDraft({ ...draft, actorId: event.target.value })} />
          <SelectField label={t("audit.outcome")} value={draft.outcome}
            onChange={(event) => setDraft({ ...draft, outcome: event.target.value as AuditFilters["outcome"] })}>
            <option value="">{t("audit.anyOutcome")}</option>
            <option value="success">{t("audit.success")}</option>
            <option value="failure">{t("audit.failure")}</option>
          </SelectField>
          <Field label={t("audit.since")} type="datetime-local" value={draft.since}
            onChange={(event) => setDraft({ ...draft, since: event.target.value })} />
          <Field label={t("audit.until")} type="datetime-local" value={draft.until}
            onChange={(event) => setDraft({ ...draft, until: event.target.value })} />
          <div className="row">
            <button type="submit" className="primary">
              {t("audit.apply")}
            </button>
            <button type="button" onClick={() => { setDraft(NO_FILTERS); setFilters(NO_FILTERS); }}>
              {t("audit.clear")}
            </button>
          </div>
        </form>
      </section>
      <section aria-labelledby="audit-heading">
        <h2 id="audit-heading">{t("audit.title")}</h2>
        <QueryState query={events} isEmpty={() => events.items.length === 0} empty={t("audit.empty")}>
          {() => (
            <>
              <TableWrap label={t("audit.title")}>
                <table>
                  <thead>
                    <tr>
                      <th scope="col">{t("audit.when")}</th>
                      <th scope="col">{t("audit.actor")}</th>
                      <th scope="col">{t("audit.action")}</th>
                      <th scope="col">{t("audit.outcome")}</th>
                      <th scope="col">{t("audit.details")}</th>
                    </tr>
                  </thead>
                  <tbody>
                    {events.items.map((event) => (
                      <tr key={event.seq}>
                        <td className="nowrap">{format.dateTime(event.occurred_at)}</td>
                        <td>{who(event)}</td>
                        <td>
                          <code>{event.action}</code>
                        </td>
                        <td>
                          <span className={`badge ${event.outcome === "success" ? "good" : "bad"}`}>
                            {event.outcome === "success" ? t("audit.success") : event.outcome === "failure" ? t("audit.failure") : event.outcome}
                          </span>
                        </td>
                        <td className="details">{detailsText(event.details)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </TableWrap>
              {events.hasNextPage && (
                <button type="button" onClick={() => void events.fetchNextPage()} disabled={events.isFetchingNextPage}>
                  {t("loadMore", { ns: "common" })}
                </button>
              )}
            </>
          )}
        </QueryState>
      </section>
    </div>
  );
}
