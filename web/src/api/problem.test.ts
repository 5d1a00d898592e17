import { ApiError, describe as sentenceFor, splitErrors, unwrap } from "./problem";

describe("problem details", () => {
  it("puts each field's error beside the field and the rest on the form", () => {
    const { fields, general } = splitErrors({
      type: "https://kai.dev/problems/validation-failed",
      title: "The request is not valid",
      status: 422,
      errors: [
        { loc: ["body", "email"], msg: "value is not a valid email address" },
        { loc: ["body", "properties", "thickness"], msg: "Value error, must be at least 3" },
        { loc: ["body"], msg: "name or code is required" },
      ],
    });
    expect(fields).toEqual({
      email: "Value is not a valid email address.",
      "properties.thickness": "Must be at least 3.",
    });
    expect(general).toEqual(["Name or code is required."]);
  });

  it("turns an error answer into an ApiError that names its kind", () => {
    const response = new Response(null, { status: 401 });
    const problem = { type: "https://kai.dev/problems/mfa-required", title: "A one-time code is required", status: 401 };
    expect(() => unwrap({ error: problem, response })).toThrow(ApiError);
    try {
      unwrap({ error: problem, response });
    } catch (error) {
      expect((error as ApiError).kind).toBe("mfa-required");
      expect(sentenceFor(error)).toBe("A one-time code is required.");
    }
  });

  it("says the server is unreachable when the network failed", () => {
    expect(sentenceFor(new TypeError("Failed to fetch"))).toMatch(/could not be reached/);
  });
});
