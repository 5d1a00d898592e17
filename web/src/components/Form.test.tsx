import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";

import { CheckboxField, SelectField, TextAreaField } from "./Form";

describe("SelectField", () => {
  it("is named by its label and describes its hint", async () => {
    const user = userEvent.setup();
    const onChange = vi.fn();
    render(
      <SelectField label="Status" hint="Drafts stay out of recognition." value="draft" onChange={onChange}>
        <option value="draft">Draft</option>
        <option value="active">Active</option>
      </SelectField>,
    );
    const select = screen.getByRole("combobox", { name: "Status" });
    expect(select).toHaveAccessibleDescription("Drafts stay out of recognition.");
    expect(select).not.toHaveAttribute("aria-invalid");
    await user.selectOptions(select, "active");
    expect(onChange).toHaveBeenCalled();
  });

  it("is marked invalid and described by its error, then its hint", () => {
    render(
      <SelectField label="Parent" hint="Leave empty for the top." error="A category cannot sit under itself." value="" onChange={() => {}}>
        <option value="">None</option>
      </SelectField>,
    );
    const select = screen.getByRole("combobox", { name: "Parent" });
    expect(select).toHaveAttribute("aria-invalid", "true");
    expect(select).toHaveAccessibleDescription("A category cannot sit under itself. Leave empty for the top.");
  });
});

describe("TextAreaField", () => {
  it("is named by its label, takes typing and has no description without error or hint", async () => {
    const user = userEvent.setup();
    const onChange = vi.fn();
    render(<TextAreaField label="Description" onChange={onChange} />);
    const textarea = screen.getByRole("textbox", { name: "Description" });
    expect(textarea.tagName).toBe("TEXTAREA");
    expect(textarea).not.toHaveAttribute("aria-describedby");
    await user.type(textarea, "Polished");
    expect(onChange).toHaveBeenCalled();
  });

  it("is marked invalid and described by its error", () => {
    render(<TextAreaField label="CSV" error="The header has no code column." defaultValue="name" />);
    const textarea = screen.getByRole("textbox", { name: "CSV" });
    expect(textarea).toHaveAttribute("aria-invalid", "true");
    expect(textarea).toHaveAccessibleDescription("The header has no code column.");
  });
});

describe("CheckboxField", () => {
  it("is named by its label and described by its error", async () => {
    const user = userEvent.setup();
    const onChange = vi.fn();
    render(<CheckboxField label="Enabled" checked={false} onChange={onChange} error="Add a client secret first." />);
    const checkbox = screen.getByRole("checkbox", { name: "Enabled" });
    expect(checkbox).toHaveAccessibleDescription("Add a client secret first.");
    await user.click(checkbox);
    expect(onChange).toHaveBeenCalledWith(true);
  });
});
