import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter } from "react-router";

import type { Schemas } from "../../api/client";
import { SsoPage } from "./SsoPage";

type Provider = Schemas["SsoProviderRead"];

const ROLES = [
  { id: null, key: "owner", name: "Owner", description: "", permissions: [], built_in: true },
  { id: null, key: "member", name: "Member", description: "", permissions: [], built_in: true },
];

function json(status: number, body: unknown): Response {
  return new Response(status === 204 ? null : JSON.stringify(body), {
    status,
    headers: { "Content-Type": status < 400 ? "application/json" : "application/problem+json" },
  });
}

const NOT_SET_UP = { type: "https://kai.dev/problems/not-found", title: "Not found", status: 404, detail: "No provider." };

/** The organization's provider as the API keeps it: nothing at first, then what was saved. */
function serve(sent: { method: string; body: unknown }[]) {
  let stored: Provider | null = null;
  let saves = 0;
  vi.stubGlobal(
    "fetch",
    vi.fn(async (request: Request) => {
      const path = new URL(request.url).pathname;
      if (path === "/api/v1/roles") return json(200, { items: ROLES, next_cursor: null });
      const body = request.method === "PUT" ? await request.json() : undefined;
      sent.push({ method: request.method, body });
      if (request.method === "GET") return stored ? json(200, stored) : json(404, NOT_SET_UP);
      if (request.method === "DELETE") {
        stored = null;
        return json(204, null);
      }
      const { client_secret: secret, ...rest } = body as { client_secret: string | null };
      saves += 1;
      stored = {
        ...rest,
        has_client_secret: stored?.has_client_secret === true || secret !== null,
        redirect_uri: "https://kai.example/api/v1/auth/sso/tiles/callback",
        login_url: "https://kai.example/api/v1/auth/sso/tiles/login",
        created_at: "2026-05-04T10:00:00Z",
        // Each save is a new version of the provider.
        updated_at: `2026-05-04T10:0${saves}:00Z`,
      } as Provider;
      return json(200, stored);
    }),
  );
}

function renderSso() {
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <MemoryRouter>
        <SsoPage />
      </MemoryRouter>
    </QueryClientProvider>,
  );
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

afterEach(() => vi.unstubAllGlobals());

describe("SsoPage", { timeout: 30_000 }, () => {
  it("says a save is done, keeps the focus on Save and shows the redirect URI to register", async () => {
    const sent: { method: string; body: unknown }[] = [];
    serve(sent);
    renderSso();
    const user = userEvent.setup();
    await user.type(await screen.findByLabelText("Issuer"), "https://login.tiles.example");
    await user.type(screen.getByLabelText("Client ID"), "kai");
    await user.type(screen.getByLabelText("Client secret"), "s3cret-from-the-provider");
    const save = screen.getByRole("button", { name: "Save" });
    await user.click(save);

    expect(await screen.findByText("Members can sign in through your OpenID Connect provider.")).toBeInTheDocument();
    expect(screen.getByRole("status")).toHaveTextContent("Saved");
    expect(save).toHaveFocus();
    expect(screen.getByText("https://kai.example/api/v1/auth/sso/tiles/callback")).toBeInTheDocument();
    // The secret is stored and not shown again: left empty, the next save keeps it.
    expect(screen.getByLabelText("Client secret")).toHaveValue("");
    expect(screen.getByText("Stored encrypted. Leave empty to keep it.")).toBeInTheDocument();
    expect(screen.getByLabelText("Issuer")).toHaveValue("https://login.tiles.example");

    // A second save is said as well.
    await user.clear(screen.getByLabelText("Allowed email domains"));
    await user.type(screen.getByLabelText("Allowed email domains"), "tiles.example");
    await user.click(save);
    await vi.waitFor(() => expect(sent.filter((request) => request.method === "PUT")).toHaveLength(2));
    expect(screen.getByRole("status")).toHaveTextContent("Saved");
    expect(sent.filter((request) => request.method === "PUT").map((request) => request.body)).toEqual([
      {
        issuer: "https://login.tiles.example",
        client_id: "kai",
        client_secret: "s3cret-from-the-provider",
        default_role: "member",
        allowed_email_domains: [],
        enabled: true,
      },
      {
        issuer: "https://login.tiles.example",
        client_id: "kai",
        client_secret: null,
        default_role: "member",
        allowed_email_domains: ["tiles.example"],
        enabled: true,
      },
    ]);
  });

  it("empties the form once the provider is removed", async () => {
    serve([]);
    renderSso();
    const user = userEvent.setup();
    await user.type(await screen.findByLabelText("Issuer"), "https://login.tiles.example");
    await user.type(screen.getByLabelText("Client ID"), "kai");
    await user.type(screen.getByLabelText("Client secret"), "s3cret-from-the-provider");
    await user.click(screen.getByRole("button", { name: "Save" }));
    await user.click(await screen.findByRole("button", { name: "Remove single sign-on" }));
    const confirm = screen.getByRole("dialog", { name: "Remove single sign-on" });
    await user.click(within(confirm).getByRole("button", { name: "Remove single sign-on" }));

    expect(await screen.findByText(/^Not set up\./)).toBeInTheDocument();
    expect(screen.getByLabelText("Issuer")).toHaveValue("");
    expect(screen.getByLabelText("Client ID")).toHaveValue("");
    expect(screen.getByRole("status")).toHaveTextContent("");
    expect(screen.getByText("Stored encrypted and never shown again.")).toBeInTheDocument();
    expect(screen.queryByText("https://kai.example/api/v1/auth/sso/tiles/callback")).not.toBeInTheDocument();
  });
});
