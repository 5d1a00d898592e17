import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter } from "react-router";

import type { Schemas } from "../../api/client";
import { Sessions } from "./Sessions";
import { useStepUp } from "./stepUp";

type Session = Schemas["SessionRead"];

const minutesAgo = (minutes: number) => new Date(Date.now() - minutes * 60_000).toISOString();

function session(overrides: Partial<Session>): Session {
  return {
    id: "00000000-0000-4000-8000-000000000000",
    current: false,
    created_at: minutesAgo(3 * 24 * 60),
    last_used_at: minutesAgo(1),
    expires_at: new Date(Date.now() + 4 * 24 * 3600_000).toISOString(),
    methods: ["pwd"],
    device: null,
    browser: null,
    os: null,
    user_agent: null,
    client_address: null,
    ...overrides,
  };
}

const MAC = session({
  id: "0d6f3a40-0000-4000-8000-000000000001",
  current: true,
  device: "Chrome on macOS",
  browser: "Chrome",
  os: "macOS",
  user_agent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Chrome/126.0.0.0 Safari/537.36",
  client_address: "192.0.2.10",
});
const PHONE = session({
  id: "0d6f3a40-0000-4000-8000-000000000002",
  last_used_at: minutesAgo(5),
  device: "Safari on iOS",
  browser: "Safari",
  os: "iOS",
  client_address: "198.51.100.7",
});
const SCRIPT = session({
  id: "0d6f3a40-0000-4000-8000-000000000003",
  last_used_at: minutesAgo(3 * 60),
  user_agent: "python-httpx/0.28.1",
});

const STEP_UP_REQUIRED = {
  type: "https://kai.dev/problems/step-up-required",
  title: "Confirm your password first: this changes your whole account",
  status: 403,
};

function answer(status: number, body?: unknown): Response {
  if (body === undefined) return new Response(null, { status });
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": status < 400 ? "application/json" : "application/problem+json" },
  });
}

interface Sent {
  method: string;
  url: string;
}

/** The API: the sessions listed, DELETE ending one (after a step-up when `stepUpFirst`). */
function serve(listed: Session[], sent: Sent[], { stepUpFirst = false, failList = false } = {}) {
  let live = [...listed];
  let steppedUp = !stepUpFirst;
  vi.stubGlobal(
    "fetch",
    vi.fn(async (request: Request) => {
      const url = new URL(request.url).pathname;
      sent.push({ method: request.method, url });
      if (url === "/api/v1/me/sessions") {
        if (failList) return answer(500, { type: "about:blank", title: "The server had a problem", status: 500 });
        return answer(200, { items: live, next_cursor: null });
      }
      if (url === "/api/v1/auth/step-up") {
        steppedUp = true;
        return answer(200, { access_token: "stepped-up", expires_in: 900, token_type: "Bearer", organization_id: null,
          step_up_expires_at: "2030-01-01T00:00:00Z" });
      }
      if (request.method === "DELETE" && url.startsWith("/api/v1/me/sessions/")) {
        if (!steppedUp) return answer(403, STEP_UP_REQUIRED);
        live = live.filter((item) => !url.endsWith(item.id));
        return answer(204);
      }
      return answer(404, { type: "about:blank", title: "Not found", status: 404 });
    }),
  );
}

function SecuritySessions() {
  const { run, dialog } = useStepUp();
  return (
    <>
      <Sessions run={run} />
      {dialog}
    </>
  );
}

function renderSessions() {
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <MemoryRouter>
        <SecuritySessions />
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

describe("Sessions", { timeout: 30_000 }, () => {
  it("lists each session with its device, address and times, this one marked", async () => {
    serve([MAC, PHONE, SCRIPT], []);
    renderSessions();
    const list = await screen.findByRole("list", { name: "Your sessions" });
    const [mac, phone, script] = within(list).getAllByRole("listitem");

    expect(mac).toHaveTextContent("Chrome on macOS");
    expect(within(mac!).getByText("This device")).toBeInTheDocument();
    expect(mac).toHaveTextContent("Active now");
    expect(mac).toHaveTextContent("IP address 192.0.2.10");
    // Nothing to sign out here: this one logs out from the menu.
    expect(within(mac!).queryByRole("button")).not.toBeInTheDocument();

    expect(phone).toHaveTextContent("Safari on iOS");
    expect(phone).toHaveTextContent("Last active: 5 minutes ago");
    expect(phone).toHaveTextContent("signed in");
    expect(within(phone!).getByRole("button", { name: "Sign out Safari on iOS" })).toBeInTheDocument();

    // A script is told by what it sent.
    expect(script).toHaveTextContent("Unknown device");
    expect(script).toHaveTextContent("python-httpx/0.28.1");
    expect(script).toHaveTextContent("Last active: 3 hours ago");
    expect(screen.getByRole("button", { name: "Log out everywhere" })).toBeInTheDocument();
  });

  it("signs another session out once confirmed, with the password when the API asks for it", async () => {
    const sent: Sent[] = [];
    serve([MAC, PHONE], sent, { stepUpFirst: true });
    renderSessions();
    const user = userEvent.setup();
    await user.click(await screen.findByRole("button", { name: "Sign out Safari on iOS" }));

    const confirm = screen.getByRole("dialog", { name: "Sign out this session?" });
    expect(confirm).toHaveTextContent("Safari on iOS is signed out at once");
    expect(sent.filter((request) => request.method === "DELETE")).toEqual([]);
    await user.click(within(confirm).getByRole("button", { name: "Sign out" }));

    await user.type(await screen.findByLabelText("Password"), "my-password");
    await user.click(screen.getByRole("button", { name: "Confirm" }));

    expect(await screen.findByText("Safari on iOS is signed out.")).toBeInTheDocument();
    expect(sent.filter((request) => request.method === "DELETE").map((request) => request.url)).toEqual([
      `/api/v1/me/sessions/${PHONE.id}`,
      `/api/v1/me/sessions/${PHONE.id}`,
    ]);
    await waitFor(() =>
      expect(within(screen.getByRole("list", { name: "Your sessions" })).getAllByRole("listitem")).toHaveLength(1),
    );
    expect(screen.queryByRole("dialog")).not.toBeInTheDocument();
  });

  it("sends nothing when the confirmation is cancelled", async () => {
    const sent: Sent[] = [];
    serve([MAC, PHONE], sent);
    renderSessions();
    const user = userEvent.setup();
    await user.click(await screen.findByRole("button", { name: "Sign out Safari on iOS" }));
    await user.click(within(screen.getByRole("dialog")).getByRole("button", { name: "Cancel" }));
    expect(screen.queryByRole("dialog")).not.toBeInTheDocument();
    expect(sent.filter((request) => request.method !== "GET")).toEqual([]);
  });

  it("says what went wrong when the list cannot be read, and tries again", async () => {
    const sent: Sent[] = [];
    serve([MAC], sent, { failList: true });
    renderSessions();
    expect(await screen.findByRole("alert")).toHaveTextContent("The server had a problem");
    await userEvent.setup().click(screen.getByRole("button", { name: "Try again" }));
    await waitFor(() => expect(sent.filter((request) => request.url === "/api/v1/me/sessions")).toHaveLength(2));
  });
});
