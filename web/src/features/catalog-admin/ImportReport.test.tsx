import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, within } from "@testing-library/react";

import type { ImportReport as Report } from "./api";
import { ImportReport } from "./ImportReport";

function renderReport(report: Report) {
  render(
    <QueryClientProvider client={new QueryClient()}>
      <ImportReport report={report} />
    </QueryClientProvider>,
  );
}

const dryRun: Report = {
  rows: 3,
  valid: 2,
  created: 2,
  updated: 0,
  unchanged: 0,
  images: 0,
  error_count: 1,
  errors: [{ index: 1, line: 3, column: "properties.thickness", message: "not a number: 'thick'" }],
  actions: [
    { index: 0, line: 2, code: "M-1", action: "create" },
    { index: 1, line: 3, code: "M-2", action: "invalid" },
    { index: 2, line: 4, code: "M-3", action: "create" },
  ],
  dry_run: true,
  written: false,
  refused: false,
};

describe("ImportReport", () => {
  it("shows each bad row with its line, column and message", () => {
    renderReport(dryRun);
    expect(screen.getByRole("heading", { name: "What the import would do" })).toBeInTheDocument();
    expect(screen.getByText("2 materials would be written.")).toBeInTheDocument();
    const problems = screen.getByRole("table", { name: "1 problem" });
    const cells = within(problems).getAllByRole("row")[1]!;
    expect(within(cells).getAllByRole("cell").map((cell) => cell.textContent)).toEqual([
      "3",
      "properties.thickness",
      "not a number: 'thick'",
    ]);
    expect(within(problems).getByRole("columnheader", { name: "Line" })).toBeInTheDocument();
  });

  it("says plainly when all or nothing refused the file", () => {
    renderReport({ ...dryRun, refused: true });
    expect(screen.getByText(/nothing would be imported/)).toBeInTheDocument();
  });

  it("counts records of a JSON file from 1 and marks a problem of the header", () => {
    renderReport({
      ...dryRun,
      dry_run: false,
      written: true,
      errors: [
        { index: 4, line: null, column: "price", message: "not a price" },
        { index: null, line: null, column: "Colour", message: "names no field" },
      ],
      error_count: 1002,
      actions: [],
    });
    expect(screen.getByText("2 materials were written.")).toBeInTheDocument();
    const problems = screen.getByRole("table", { name: "1002 problems" });
    expect(within(problems).getByRole("columnheader", { name: "Record" })).toBeInTheDocument();
    const rows = within(problems).getAllByRole("row").slice(1);
    expect(within(rows[0]!).getAllByRole("cell")[0]).toHaveTextContent("5");
    expect(within(rows[1]!).getAllByRole("cell")[0]).toHaveTextContent("Header");
    expect(screen.getByText("…and 1000 more problems not listed.")).toBeInTheDocument();
  });
});
