import { ApiError } from "../../api/problem";
import { settingsChanges } from "./MembersPage";
import { errorFor, patternErrors, splitList } from "./ui";

const saved = {
  id: "o1",
  name: "Stone",
  slug: "stone",
  signup_policy: "invite_only" as const,
  allowed_email_domains: ["stone.example"],
  mfa_required: false,
  session_lifetime_hours: null,
  default_role: "member",
  created_at: "2026-01-01T00:00:00Z",
};

describe("organization settings", () => {
  it("sends only what changed", () => {
    const form = {
      name: "Stone",
      signup_policy: "invite_only" as const,
      allowed_email_domains: ["stone.example"],
      mfa_required: true,
      session_lifetime_hours: 12,
      default_role: "member",
    };
    expect(settingsChanges(saved, form)).toEqual({ mfa_required: true, session_lifetime_hours: 12 });
    expect(settingsChanges(saved, { ...form, mfa_required: false, session_lifetime_hours: null })).toEqual({});
  });

  it("reads a list of domains however it is separated", () => {
    expect(splitList(" a.example, b.example;c.example\nd.example ")).toEqual(["a.example", "b.example", "c.example", "d.example"]);
    expect(splitList("")).toEqual([]);
  });
});

describe("field errors", () => {
  const refused = new ApiError({
    type: "https://kai.dev/problems/validation",
    title: "The request is not valid",
    status: 422,
    errors: [
      { loc: ["body", "allowed_email_domains", 1], msg: "String should match pattern '^(…)$'", type: "string_pattern_mismatch" },
      { loc: ["body", "name"], msg: "String should have at least 1 character", type: "string_too_short" },
    ],
  });

  it("says a refused pattern in words, beside the field", () => {
    const fields = patternErrors(refused, { "allowed_email_domains.1": "String should match pattern.", name: "Too short." }, {
      allowed_email_domains: "Enter domains such as example.com.",
    });
    expect(errorFor(fields, "allowed_email_domains")).toBe("Enter domains such as example.com.");
    expect(fields.name).toBe("Too short.");
  });

  it("finds an error about one item of a list field", () => {
    expect(errorFor({ "allowed_email_domains.2": "Bad." }, "allowed_email_domains")).toBe("Bad.");
    expect(errorFor({}, "allowed_email_domains")).toBeUndefined();
  });
});
