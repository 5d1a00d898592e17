import { render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { useState } from "react";

import { api } from "../../api/client";
import { ApiError, describe as sentence, unwrap } from "../../api/problem";
import { forget } from "../../auth/session";
import { StepUpCancelled, useStepUp, withStepUp } from "./stepUp";

const STEP_UP_REQUIRED = {
  type: "https://kai.dev/problems/step-up-required",
  title: "Confirm your password first: this changes your whole account",
  status: 403,
};

function problem(body: typeof STEP_UP_REQUIRED): ApiError {
  return new ApiError(body);
}

function answer(status: number, body?: unknown): Response {
  if (body === undefined) return new Response(null, { status });
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": status < 400 ? "application/json" : "application/problem+json" },
  });
}

// jsdom has no modal dialogs: open and close them as a browser would, by the attribute.
beforeAll(() => {
  HTMLDialogElement.prototype.showModal ??= function (this: HTMLDialogElement) {
    this.setAttribute("open", "");
  };
  HTMLDialogElement.prototype.close ??= function (this: HTMLDialogElement) {
    this.removeAttribute("open");
  };
});

afterEach(() => {
  vi.unstubAllGlobals();
  forget();
});

describe("withStepUp", () => {
  it("runs the action once when no proof is asked for", async () => {
    const action = vi.fn(async () => "done");
    const confirm = vi.fn(async () => true);
    await expect(withStepUp(action, confirm)).resolves.toBe("done");
    expect(action).toHaveBeenCalledTimes(1);
    expect(confirm).not.toHaveBeenCalled();
  });

  it("asks for the password and runs the action again when the API wants a step-up", async () => {
    const action = vi
      .fn<() => Promise<string>>()
      .mockRejectedValueOnce(problem(STEP_UP_REQUIRED))
      .mockResolvedValueOnce("done");
    const confirm = vi.fn(async () => true);
    await expect(withStepUp(action, confirm)).resolves.toBe("done");
    expect(confirm).toHaveBeenCalledTimes(1);
    expect(action).toHaveBeenCalledTimes(2);
  });

  it("does not run the action again when the person cancels", async () => {
    const action = vi.fn(async () => {
      throw problem(STEP_UP_REQUIRED);
    });
    await expect(withStepUp(action, async () => false)).rejects.toBeInstanceOf(StepUpCancelled);
    expect(action).toHaveBeenCalledTimes(1);
  });

  it("passes any other error through without asking", async () => {
    const wrong = new ApiError({ type: "about:blank", title: "The current password is not correct", status: 401 });
    const confirm = vi.fn(async () => true);
    await expect(withStepUp(async () => Promise.reject(wrong), confirm)).rejects.toBe(wrong);
    expect(confirm).not.toHaveBeenCalled();
  });

  it("asks only once: a second refusal reaches the caller", async () => {
    const action = vi.fn(async () => {
      throw problem(STEP_UP_REQUIRED);
    });
    await expect(withStepUp(action, async () => true)).rejects.toBeInstanceOf(ApiError);
    expect(action).toHaveBeenCalledTimes(2);
  });
});

function ChangePassword() {
  const { run, dialog } = useStepUp();
  const [result, setResult] = useState("");
  return (
    <>
      <button
        type="button"
        onClick={() =>
          run(async () =>
            unwrap(await api.POST("/api/v1/me/password", { body: { current_password: "a", new_password: "b" } })),
          ).then(
            () => setResult("changed"),
            (error: unknown) => setResult(sentence(error)),
          )
        }
      >
        Change
      </button>
      <p>{result}</p>
      {dialog}
    </>
  );
}

describe("useStepUp", () => {
  it("confirms the password (and the one-time code) in a dialog, then retries with the new token", async () => {
    const requests: { url: string; authorization: string | null; csrf: string | null; body: unknown }[] = [];
    let passwordTries = 0;
    vi.stubGlobal(
      "fetch",
      vi.fn(async (request: Request) => {
        const text = await request.text();
        const body = text ? JSON.parse(text) : null;
        const url = new URL(request.url).pathname;
        requests.push({
          url,
          authorization: request.headers.get("Authorization"),
          csrf: request.headers.get("X-Requested-With"),
          body,
        });
        if (url === "/api/v1/me/password") return passwordTries++ === 0 ? answer(403, STEP_UP_REQUIRED) : answer(204);
        if (url === "/api/v1/auth/step-up") {
          if (!body.totp_code) {
            return answer(401, { type: "https://kai.dev/problems/mfa-required", title: "A one-time code is required", status: 401 });
          }
          return answer(200, {
            access_token: "stepped-up",
            expires_in: 900,
            token_type: "Bearer",
            organization_id: null,
            step_up_expires_at: "2030-01-01T00:00:00Z",
          });
        }
        return answer(404, { type: "about:blank", title: "Not found", status: 404 });
      }),
    );
    render(<ChangePassword />);
    const user = userEvent.setup();
    await user.click(screen.getByRole("button", { name: "Change" }));

    await user.type(await screen.findByLabelText("Password"), "my-password");
    await user.click(screen.getByRole("button", { name: "Confirm" }));
    await user.type(await screen.findByLabelText("Code from your authenticator app"), "123456");
    await user.click(screen.getByRole("button", { name: "Confirm" }));

    expect(await screen.findByText("changed")).toBeInTheDocument();
    expect(requests.map((r) => r.url)).toEqual([
      "/api/v1/me/password",
      "/api/v1/auth/step-up",
      "/api/v1/auth/step-up",
      "/api/v1/me/password",
    ]);
    expect(requests[2]!.body).toEqual({ password: "my-password", totp_code: "123456" });
    expect(requests[2]!.csrf).toBe("kai");
    // The retry carries the token the step-up answered.
    expect(requests[3]!.authorization).toBe("Bearer stepped-up");
    await waitFor(() => expect(screen.queryByLabelText("Password")).not.toBeInTheDocument());
  });

  it("says nothing changed when the person closes the dialog", async () => {
    const fetch = vi.fn(async () => answer(403, STEP_UP_REQUIRED));
    vi.stubGlobal("fetch", fetch);
    render(<ChangePassword />);
    const user = userEvent.setup();
    await user.click(screen.getByRole("button", { name: "Change" }));
    await screen.findByLabelText("Password");
    await user.click(screen.getByRole("button", { name: "Close" }));
    expect(await screen.findByText("Your password was not confirmed, so nothing was changed.")).toBeInTheDocument();
    expect(fetch).toHaveBeenCalledTimes(1);
  });

  it("shows a wrong password in the dialog and does not retry", async () => {
    const urls: string[] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (request: Request) => {
        const url = new URL(request.url).pathname;
        urls.push(url);
        if (url === "/api/v1/auth/step-up") {
          return answer(401, { type: "about:blank", title: "The password is not correct", status: 401 });
        }
        return answer(403, STEP_UP_REQUIRED);
      }),
    );
    render(<ChangePassword />);
    const user = userEvent.setup();
    await user.click(screen.getByRole("button", { name: "Change" }));
    await user.type(await screen.findByLabelText("Password"), "wrong");
    await user.click(screen.getByRole("button", { name: "Confirm" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("The password is not correct.");
    expect(urls).toEqual(["/api/v1/me/password", "/api/v1/auth/step-up"]);
  });
});
