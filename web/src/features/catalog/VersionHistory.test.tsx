import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter, Route, Routes } from "react-router";

import type { Schemas } from "../../api/client";
import type { Category, Material } from "./api";
import MaterialPage from "./MaterialPage";

const tiles: Category = {
  id: "c1",
  parent_id: null,
  name: "Tiles",
  description: "",
  position: 0,
  path: [],
  properties: [],
  effective_properties: [
    { key: "thickness", label: "Thickness", type: "number", unit: "mm", required: false, description: "", minimum: null, maximum: null },
  ],
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:00Z",
};

const slate: Material = {
  id: "m1",
  category_id: "c1",
  name: "Slate black",
  code: "SL-1",
  description: "",
  properties: { thickness: { value: 25, unit: "mm" } },
  manufacturer: "",
  supplier: "",
  price: null,
  currency: null,
  tags: [],
  status: "draft",
  version: 2,
  units: "metric",
  thumbnail_url: null,
  deleted_at: null,
  created_by: null,
  updated_by: null,
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-02T00:00:00Z",
};

type MaterialVersion = Schemas["MaterialVersionRead"];

const history: MaterialVersion[] = [
  {
    version: 2,
    action: "updated",
    changes: { name: { old: "Slate", new: "Slate black" }, "properties.thickness": { old: 20, new: 25 } },
    restored_from: null,
    changed_by: "user:1",
    changed_at: "2026-01-02T00:00:00Z",
  },
  { version: 1, action: "created", changes: {}, restored_from: null, changed_by: "user:1", changed_at: "2026-01-01T00:00:00Z" },
];

const restoredSlate: Material = { ...slate, name: "Slate", properties: { thickness: { value: 20, unit: "mm" } }, version: 3 };

const restoredVersion: MaterialVersion = {
  version: 3,
  action: "updated",
  changes: { name: { old: "Slate black", new: "Slate" }, "properties.thickness": { old: 25, new: 20 } },
  restored_from: 1,
  changed_by: "user:1",
  changed_at: "2026-01-03T00:00:00Z",
};

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": status < 400 ? "application/json" : "application/problem+json" },
  });
}

interface Sent {
  path: string;
  ifMatch: string | null;
}

/** The API of one material; `restore` answers the restore, and what it answers is kept. */
function serve(restore: () => Response): Sent[] {
  const sent: Sent[] = [];
  let material = slate;
  let versions = history;
  vi.stubGlobal(
    "fetch",
    vi.fn(async (request: Request) => {
      const url = new URL(request.url);
      if (request.method === "POST") {
        sent.push({ path: url.pathname, ifMatch: request.headers.get("if-match") });
        const answer = restore();
        if (answer.ok) {
          material = restoredSlate;
          versions = [restoredVersion, ...history];
        }
        return answer;
      }
      if (url.pathname === "/api/v1/materials/m1") return json(material);
      if (url.pathname === "/api/v1/materials/m1/versions") return json({ items: versions, next_cursor: null });
      if (url.pathname === "/api/v1/categories") return json({ items: [tiles], next_cursor: null });
      if (url.pathname === "/api/v1/materials/m1/images") return json({ items: [], next_cursor: null });
      if (url.pathname === "/api/v1/materials/m1/similar") return json({ items: [] });
      return json({ type: "about:blank", title: "Not Found", status: 404 }, 404);
    }),
  );
  return sent;
}

function renderPage(permissions: string[]) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  // Who is signed in, as /api/v1/me would say (no session in a test: the organization is null).
  client.setQueryData(["me", null], { permissions });
  render(
    <QueryClientProvider client={client}>
      <MemoryRouter initialEntries={["/catalog/materials/m1"]}>
        <Routes>
          <Route path="/catalog/materials/:materialId" element={<MaterialPage />} />
        </Routes>
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

/** The history's entry of `version`, once loaded (generous: the first render loads modules). */
async function entry(version: number): Promise<HTMLElement> {
  const history = await screen.findByRole("region", { name: "History" }, { timeout: 5000 });
  const heading = await within(history).findByText(`Version ${version}`);
  return heading.closest("li")!;
}

const WRITER = ["materials:read", "materials:write"];

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

describe("VersionHistory", { timeout: 30_000 }, () => {
  it("restores an earlier version after a confirmation, then shows the material and history anew", async () => {
    const sent = serve(() => json(restoredSlate));
    renderPage(WRITER);
    const user = userEvent.setup();
    // The current version has nothing to restore.
    expect(within(await entry(2)).queryByRole("button", { name: "Restore this version" })).not.toBeInTheDocument();

    await user.click(within(await entry(1)).getByRole("button", { name: "Restore this version" }));
    const dialog = screen.getByRole("dialog", { name: "Restore version 1?" });
    expect(sent).toEqual([]);
    await user.click(within(dialog).getByRole("button", { name: "Restore version 1" }));

    expect(sent).toEqual([{ path: "/api/v1/materials/m1/versions/1/restore", ifMatch: '"2"' }]);
    expect(await screen.findByText("Version 1 restored, saved as version 3.")).toBeInTheDocument();
    expect(screen.queryByRole("dialog")).not.toBeInTheDocument();
    expect(screen.getByLabelText("Name")).toHaveValue("Slate");
    const restored = await entry(3);
    expect(restored).toHaveTextContent("Restored from version 1");
    expect(restored).toHaveTextContent("Thickness: 25 mm → 20 mm");
  });

  it("says in a sentence why a version cannot be restored, and changes nothing", async () => {
    serve(() =>
      json(
        {
          type: "https://kai.dev/problems/unknown-category",
          title: "The category named in the request does not exist",
          status: 422,
          detail: "Version 1 was filed under a category that no longer exists. Change the material by hand instead.",
          errors: [{ loc: ["category_id"], msg: "no such category", type: "unknown" }],
        },
        422,
      ),
    );
    renderPage(WRITER);
    const user = userEvent.setup();
    await user.click(within(await entry(1)).getByRole("button", { name: "Restore this version" }));
    const dialog = screen.getByRole("dialog", { name: "Restore version 1?" });
    await user.click(within(dialog).getByRole("button", { name: "Restore version 1" }));

    expect(await within(dialog).findByRole("alert")).toHaveTextContent(
      "Version 1 was filed under a category that no longer exists. Change the material by hand instead.",
    );
    expect(screen.getByLabelText("Name")).toHaveValue("Slate black");
    expect(screen.queryByText("Version 3")).not.toBeInTheDocument();
  });

  it("asks to look again when someone saved the material meanwhile", async () => {
    serve(() =>
      json({ type: "https://kai.dev/problems/precondition-failed", title: "The resource has changed", status: 412 }, 412),
    );
    renderPage(WRITER);
    const user = userEvent.setup();
    await user.click(within(await entry(1)).getByRole("button", { name: "Restore this version" }));
    const dialog = screen.getByRole("dialog", { name: "Restore version 1?" });
    await user.click(within(dialog).getByRole("button", { name: "Restore version 1" }));

    expect(await within(dialog).findByRole("alert")).toHaveTextContent(
      "Someone changed this material since you opened it. The latest version is shown now: look at it again before restoring.",
    );
    expect(within(dialog).getByRole("button", { name: "Restore version 1" })).toBeDisabled();
  });

  it("offers a reader the history without a way to restore", async () => {
    serve(() => json(restoredSlate));
    renderPage(["materials:read"]);
    expect(await entry(1)).toBeInTheDocument();
    expect(screen.getByText("Each saved change, newest first.")).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Restore this version" })).not.toBeInTheDocument();
  });
});
