import { auditQuery, detailsText } from "./AuditPage";
import { PERMISSIONS, canEditRole, canToggle, changedRoles, isValidKey, keyFromName, labelKey, permissionGroups, sameSet, toggled, type Role } from "./matrix";
import { ssoErrors } from "./SsoPage";
import { ApiError } from "../../api/problem";
import { strings } from "./strings";

const builtIn: Role = { id: null, key: "analyst", name: "Analyst", description: "", permissions: ["materials:read"], built_in: true };
const custom: Role = { id: "r1", key: "surveyor", name: "Surveyor", description: "", permissions: ["materials:read", "models:read"], built_in: false };
const mighty: Role = { id: "r2", key: "boss", name: "Boss", description: "", permissions: ["materials:read", "sso:manage"], built_in: false };

describe("the permission matrix", () => {
  it("groups the rows by what they are about, keeping every permission once", () => {
    const groups = permissionGroups();
    expect(groups.map((group) => group.area).slice(0, 3)).toEqual(["materials", "recognitions", "projects"]);
    expect(groups.flatMap((group) => group.permissions)).toEqual([...PERMISSIONS]);
  });

  it("ticks and unticks a cell, keeping the server's order and no duplicates", () => {
    expect(toggled(["models:read"], "materials:read", true)).toEqual(["materials:read", "models:read"]);
    expect(toggled(["materials:read", "models:read"], "materials:read", true)).toEqual(["materials:read", "models:read"]);
    expect(toggled(["materials:read", "models:read"], "materials:read", false)).toEqual(["models:read"]);
  });

  it("keeps built-in roles read-only", () => {
    const everything = new Set<string>(PERMISSIONS);
    expect(canEditRole(builtIn, everything)).toBe(false);
    expect(canToggle(canEditRole(builtIn, everything), "materials:read", everything)).toBe(false);
  });

  it("lets a person edit a custom role only within their own permissions", () => {
    const mine = new Set<string>(["materials:read", "models:read", "roles:manage"]);
    expect(canEditRole(custom, mine)).toBe(true);
    expect(canEditRole(mighty, mine)).toBe(false);
    expect(canToggle(true, "models:read", mine)).toBe(true);
    expect(canToggle(true, "sso:manage", mine)).toBe(false);
  });

  it("finds the roles whose drafts differ from what the server holds", () => {
    expect(changedRoles([builtIn, custom, mighty], {})).toEqual([]);
    expect(changedRoles([custom], { r1: ["models:read", "materials:read"] })).toEqual([]);
    expect(changedRoles([custom, mighty], { r1: ["materials:read"] })).toEqual([custom]);
    expect(sameSet(["a", "b"], ["b", "a"])).toBe(true);
    expect(sameSet(["a"], ["a", "b"])).toBe(false);
  });

  it("makes a key the server accepts from a role's name", () => {
    expect(keyFromName("Site Surveyor")).toBe("site-surveyor");
    expect(keyFromName("  Prüfer (extern) ")).toBe("prufer-extern");
    expect(keyFromName("3D team")).toBe("d-team");
    expect(isValidKey(keyFromName("Site Surveyor"))).toBe(true);
    expect(keyFromName("x".repeat(100))).toHaveLength(63);
    expect(isValidKey("Has Spaces")).toBe(false);
  });

  it("has a label for every permission in both languages", () => {
    for (const permission of PERMISSIONS) {
      expect(strings.en[labelKey(permission)]).toBeTruthy();
      expect(strings.de[labelKey(permission)]).toBeTruthy();
    }
    expect(Object.keys(strings.de).sort()).toEqual(Object.keys(strings.en).sort());
  });
});

describe("audit filters", () => {
  it("leaves blank filters out of the query", () => {
    expect(auditQuery({ action: " invitation ", actorId: "", outcome: "", since: "", until: "" })).toEqual({
      action: "invitation",
      actor_id: undefined,
      outcome: undefined,
      since: undefined,
      until: undefined,
    });
  });

  it("sends a local time range as instants", () => {
    const query = auditQuery({ action: "", actorId: "", outcome: "failure", since: "2026-01-02T10:00", until: "" });
    expect(query.outcome).toBe("failure");
    expect(query.since).toBe(new Date("2026-01-02T10:00").toISOString());
  });

  it("writes details as a line a person reads", () => {
    expect(detailsText({ email: "a@b.example", changed: ["name", "mfa_required"], count: 2 })).toBe(
      "email: a@b.example · changed: name, mfa_required · count: 2",
    );
  });
});

describe("single sign-on errors", () => {
  it("puts a refused issuer beside the issuer field", () => {
    const error = new ApiError({
      type: "https://kai.dev/problems/sso-issuer-invalid",
      title: "Not a usable OpenID Connect issuer",
      status: 422,
      detail: "The discovery document did not answer",
    });
    expect(ssoErrors(error)).toEqual({ fields: { issuer: "The discovery document did not answer." }, message: null });
  });

  it("keeps other problems for the form as a whole", () => {
    const error = new ApiError({ type: "about:blank", title: "Forbidden", status: 403 });
    expect(ssoErrors(error)).toEqual({ fields: {}, message: "Forbidden." });
  });
});
