// Pieces the administration screens share: the roles everyone picks from, what a person
// without the permission sees, and the sentences of their refusals.
import { useQuery } from "@tanstack/react-query";
import type { ReactNode } from "react";
import { useTranslation } from "react-i18next";

import { api } from "../../api/client";
import { ApiError, fieldOf, unwrap } from "../../api/problem";
import { Empty } from "../../components/States";

/** The first error about `name` or one of its items (`allowed_email_domains.2`). */
export function errorFor(fields: Record<string, string>, name: string): string | undefined {
  if (fields[name]) return fields[name];
  const key = Object.keys(fields).find((field) => field.startsWith(`${name}.`));
  return key ? fields[key] : undefined;
}

/** What a person sees on a tab their role does not open. */
export function NoAccess() {
  const { t } = useTranslation("admin");
  return <Empty>{t("noAccess")}</Empty>;
}

/** Built-in and custom roles; few enough for one page. */
export function useRoles(enabled = true) {
  return useQuery({
    queryKey: ["roles"],
    queryFn: async () => unwrap(await api.GET("/api/v1/roles", { params: { query: { limit: 200 } } })).items,
    enabled,
  });
}

/** A role's name for a key, falling back to the key itself. */
export function roleLabel(roles: readonly { key: string; name: string }[] | undefined, key: string): string {
  return roles?.find((role) => role.key === key)?.name ?? key;
}

/** `a.com, b.com` or one per line -> ["a.com", "b.com"]. */
export function splitList(text: string): string[] {
  return text
    .split(/[\s,;]+/)
    .map((part) => part.trim())
    .filter(Boolean);
}

/** A table that scrolls sideways on a narrow screen, reachable by keyboard to scroll it. */
export function TableWrap({ label, className, children }: { label: string; className?: string; children: ReactNode }) {
  return (
    <div className={`table-wrap${className ? ` ${className}` : ""}`} tabIndex={0} role="group" aria-label={label}>
      {children}
    </div>
  );
}

/**
 * The field errors of a failed save, with the server's pattern refusals ("String should match
 * pattern '^…$'") replaced by sentences a person understands, per field.
 */
export function patternErrors(error: unknown, fields: Record<string, string>, sentences: Record<string, string>) {
  if (!(error instanceof ApiError)) return fields;
  const friendly = { ...fields };
  for (const item of error.problem.errors ?? []) {
    if (item.type !== "string_pattern_mismatch") continue;
    const field = fieldOf(item);
    const name = field?.split(".")[0];
    if (field && name && sentences[name]) {
      friendly[field] = sentences[name];
      friendly[name] = sentences[name];
    }
  }
  return friendly;
}
