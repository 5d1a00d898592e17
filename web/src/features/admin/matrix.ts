// The permission matrix's rules, apart from the screen: which cells a person may change, what
// a column holds after a click, and whether a role differs from what the server has.
import type { Schemas } from "../../api/client";

export type Permission = Schemas["Permission"];
export type Role = Schemas["RoleRead"];

/** Every permission, in the order the server declares them (grouped by what they are about). */
export const PERMISSIONS: readonly Permission[] = [
  "materials:read",
  "materials:write",
  "recognitions:create",
  "recognitions:read",
  "projects:manage",
  "models:read",
  "models:train",
  "models:deploy",
  "jobs:read",
  "jobs:manage",
  "members:read",
  "members:manage",
  "teams:manage",
  "roles:manage",
  "api_keys:manage",
  "audit:read",
  "sso:manage",
  "organization:manage",
];

export function isPermission(value: string): value is Permission {
  return (PERMISSIONS as readonly string[]).includes(value);
}

/** What a permission is about (`materials`), for grouping rows. */
export function areaOf(permission: Permission): string {
  return permission.split(":")[0] ?? permission;
}

/** The rows of the matrix: permissions grouped by area, in declaration order. */
export function permissionGroups(): { area: string; permissions: Permission[] }[] {
  const groups: { area: string; permissions: Permission[] }[] = [];
  for (const permission of PERMISSIONS) {
    const area = areaOf(permission);
    const last = groups[groups.length - 1];
    if (last && last.area === area) last.permissions.push(permission);
    else groups.push({ area, permissions: [permission] });
  }
  return groups;
}

/** Permissions in declaration order, each once: the form the server stores and answers. */
export function normalized(permissions: Iterable<string>): Permission[] {
  const held = new Set(permissions);
  return PERMISSIONS.filter((permission) => held.has(permission));
}

/** The column after a click on one of its cells. */
export function toggled(permissions: readonly Permission[], permission: Permission, on: boolean): Permission[] {
  const next = new Set<string>(permissions);
  if (on) next.add(permission);
  else next.delete(permission);
  return normalized(next);
}

export function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const left = new Set(a);
  const right = new Set(b);
  return left.size === right.size && [...left].every((value) => right.has(value));
}

/**
 * Whether the person may change a role at all. Built-in roles are fixed; a custom role holding
 * something the person lacks would change what others may do beyond their own powers, which
 * the server refuses, so the screen does not offer it.
 */
export function canEditRole(role: Role, mine: ReadonlySet<string>): boolean {
  return !role.built_in && role.permissions.every((permission) => mine.has(permission));
}

/** Whether one cell can be clicked: an editable role, and a permission the person holds. */
export function canToggle(editable: boolean, permission: Permission, mine: ReadonlySet<string>): boolean {
  return editable && mine.has(permission);
}

/** The custom roles whose draft differs from the server's: what "Save" sends. */
export function changedRoles(roles: readonly Role[], drafts: Readonly<Record<string, readonly Permission[]>>) {
  return roles.filter((role) => {
    const draft = role.id ? drafts[role.id] : undefined;
    return draft !== undefined && !sameSet(draft, role.permissions);
  });
}

const KEY_PATTERN = /^[a-z][a-z0-9_-]{0,62}$/;

/** A role key from its name, as the server accepts them: `Site surveyor` -> `site-surveyor`. */
export function keyFromName(name: string): string {
  const slug = name
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^[^a-z]+/, "")
    .replace(/-+$/, "")
    .slice(0, 63)
    .replace(/-+$/, "");
  return slug;
}

export function isValidKey(key: string): boolean {
  return KEY_PATTERN.test(key);
}

/** The string key of a permission's label: i18next reads `:` as a namespace separator. */
export function labelKey(permission: Permission): string {
  return `perm.${permission.replace(":", "_")}`;
}
