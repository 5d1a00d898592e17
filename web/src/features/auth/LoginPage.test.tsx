import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter } from "react-router";

import { LoginPage } from "./LoginPage";

function answer(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": status < 400 ? "application/json" : "application/problem+json" },
  });
}

function renderLogin() {
  render(
    <QueryClientProvider client={new QueryClient()}>
      <MemoryRouter>
        <LoginPage />
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

afterEach(() => vi.unstubAllGlobals());

describe("LoginPage", () => {
  it("asks for the one-time code when the account has two-factor authentication", async () => {
    const sent: unknown[] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (request: Request) => {
        const body = await request.json();
        sent.push(body);
        return body.totp_code
          ? answer(200, { access_token: "a", expires_in: 900, token_type: "Bearer", organization_id: null })
          : answer(401, { type: "https://kai.dev/problems/mfa-required", title: "A one-time code is required", status: 401 });
      }),
    );
    renderLogin();
    const user = userEvent.setup();
    await user.type(screen.getByLabelText("Email"), "ana@example.com");
    await user.type(screen.getByLabelText("Password"), "a-long-password");
    await user.click(screen.getByRole("button", { name: "Log in" }));
    const code = await screen.findByLabelText("Code from your authenticator app");
    await user.type(code, "123456");
    await user.click(screen.getByRole("button", { name: "Verify" }));
    expect(sent).toHaveLength(2);
    expect(sent[1]).toMatchObject({ email: "ana@example.com", totp_code: "123456", refresh_token_in: "cookie" });
  });

  it("shows a wrong password as a sentence", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async () => answer(401, { type: "about:blank", title: "The email or password is not correct", status: 401 })),
    );
    renderLogin();
    const user = userEvent.setup();
    await user.type(screen.getByLabelText("Email"), "ana@example.com");
    await user.type(screen.getByLabelText("Password"), "wrong");
    await user.click(screen.getByRole("button", { name: "Log in" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("The email or password is not correct.");
  });
});
