import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { useState } from "react";

import { ApiError } from "../api/problem";
import { ConfirmDialog } from "./Dialog";
import { Field } from "./Form";

// jsdom has no modal dialogs: open and close them as a browser would, by the attribute.
beforeAll(() => {
  HTMLDialogElement.prototype.showModal ??= function (this: HTMLDialogElement) {
    this.setAttribute("open", "");
  };
  HTMLDialogElement.prototype.close ??= function (this: HTMLDialogElement) {
    this.removeAttribute("open");
  };
});

function renderConfirm(props: Partial<Parameters<typeof ConfirmDialog>[0]> = {}) {
  const onConfirm = vi.fn();
  const onClose = vi.fn();
  render(
    <ConfirmDialog
      open
      title="Delete Carrara?"
      confirmLabel="Delete"
      pending={false}
      error={null}
      onConfirm={onConfirm}
      onClose={onClose}
      {...props}
    >
      <p>It goes to the trash.</p>
    </ConfirmDialog>,
  );
  return { onConfirm, onClose, dialog: screen.getByRole("dialog", { name: "Delete Carrara?" }) };
}

describe("ConfirmDialog", () => {
  it("confirms once, with Cancel first and the confirm last", async () => {
    const user = userEvent.setup();
    const { onConfirm, onClose, dialog } = renderConfirm();
    expect(dialog).toHaveTextContent("It goes to the trash.");
    const cancel = within(dialog).getByRole("button", { name: "Cancel" });
    const confirm = within(dialog).getByRole("button", { name: "Delete" });
    expect(cancel.compareDocumentPosition(confirm) & Node.DOCUMENT_POSITION_FOLLOWING).toBeTruthy();
    expect(confirm).toHaveClass("danger");

    await user.click(confirm);
    expect(onConfirm).toHaveBeenCalledTimes(1);
    expect(onClose).not.toHaveBeenCalled();
  });

  it("cancels without confirming", async () => {
    const user = userEvent.setup();
    const { onConfirm, onClose, dialog } = renderConfirm();
    await user.click(within(dialog).getByRole("button", { name: "Cancel" }));
    expect(onClose).toHaveBeenCalledTimes(1);
    expect(onConfirm).not.toHaveBeenCalled();
  });

  it("holds the confirm back while the action runs", async () => {
    const user = userEvent.setup();
    const { onConfirm, dialog } = renderConfirm({ pending: true });
    const confirm = within(dialog).getByRole("button", { name: "Delete" });
    expect(confirm).toBeDisabled();
    await user.click(confirm);
    expect(onConfirm).not.toHaveBeenCalled();
    expect(within(dialog).getByRole("button", { name: "Cancel" })).toBeEnabled();
  });

  it("confirms in the primary style when nothing is lost", () => {
    const { dialog } = renderConfirm({ tone: "primary", confirmLabel: "Activate" });
    const confirm = within(dialog).getByRole("button", { name: "Activate" });
    expect(confirm).toHaveClass("primary");
    expect(confirm).not.toHaveClass("danger");
  });

  it("says the server's sentence when the action fails", () => {
    const error = new ApiError({ type: "material-in-use", title: "In use", status: 409, detail: "It is in 2 projects" });
    const { dialog } = renderConfirm({ error });
    expect(within(dialog).getByRole("alert")).toHaveTextContent("It is in 2 projects.");
  });

  it("says the server's sentence when the problem only names fields, which it has none of", () => {
    const error = new ApiError({
      type: "invalid-properties",
      title: "Some property values do not fit the category's schema",
      status: 422,
      detail: "Its values no longer fit its category: change or move it first, then restore it.",
      errors: [{ loc: ["body", "properties", "thickness"], msg: "must be a number", type: "number" }],
    });
    const { dialog } = renderConfirm({ error });
    expect(within(dialog).getByRole("alert")).toHaveTextContent(
      "Its values no longer fit its category: change or move it first, then restore it.",
    );
  });

  it("says the caller's own sentence over the error's", () => {
    const error = new ApiError({ type: "precondition-failed", title: "Changed meanwhile", status: 412 });
    renderConfirm({ error, problem: "Someone saved a newer version." });
    expect(screen.getByRole("alert")).toHaveTextContent("Someone saved a newer version.");
  });

  it("leaves only Cancel when there is nothing to confirm", () => {
    const { dialog } = renderConfirm({ onConfirm: undefined });
    expect(within(dialog).queryByRole("button", { name: "Delete" })).not.toBeInTheDocument();
    expect(within(dialog).getByRole("button", { name: "Cancel" })).toBeInTheDocument();
    expect(within(dialog).queryByRole("alert")).not.toBeInTheDocument();
  });

  it("confirms on Enter in a field it asks for, unless held back", async () => {
    const user = userEvent.setup();
    const onConfirm = vi.fn();
    function Restore() {
      const [code, setCode] = useState("");
      return (
        <ConfirmDialog open title="Restore?" confirmLabel="Restore" tone="primary" pending={false} disabled={!code}
          error={null} onConfirm={onConfirm} onClose={() => {}}>
          <Field label="New code" value={code} onChange={(event) => setCode(event.target.value)} />
        </ConfirmDialog>
      );
    }
    render(<Restore />);
    const field = screen.getByLabelText("New code");
    await user.type(field, "{Enter}");
    expect(onConfirm).not.toHaveBeenCalled();
    await user.type(field, "M-2{Enter}");
    expect(onConfirm).toHaveBeenCalledTimes(1);
  });
});
