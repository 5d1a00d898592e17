// An import's report: how many rows, what they do, and each problem with its line and column.
import { useTranslation } from "react-i18next";

import { useFormat } from "../../i18n/format";
import type { ImportReport as Report } from "./api";

export function ImportReport({ report }: { report: Report }) {
  const { t } = useTranslation("catalogAdmin");
  const format = useFormat();
  const headline = report.dry_run
    ? report.refused
      ? t("report.wouldRefuse")
      : t("report.wouldWrite", { count: report.created + report.updated })
    : report.written
      ? t("report.written", { count: report.created + report.updated })
      : t("report.refused");
  const counts: [string, number][] = [
    [t("report.rows"), report.rows],
    [t("report.valid"), report.valid],
    [report.dry_run ? t("report.wouldCreate") : t("report.created"), report.created],
    [report.dry_run ? t("report.wouldUpdate") : t("report.updated"), report.updated],
    [t("report.unchanged"), report.unchanged],
    [t("report.images"), report.images],
    [t("report.problems"), report.error_count],
  ];
  const usesLines = report.errors.some((error) => error.line != null) || report.actions.some((action) => action.line != null);
  return (
    <section className="stack import-report" aria-labelledby="report-heading">
      <h2 id="report-heading">{report.dry_run ? t("report.dryTitle") : t("report.title")}</h2>
      <p className={report.refused ? "form-problem" : "report-headline"}>{headline}</p>
      <dl className="report-counts">
        {counts.map(([label, value]) => (
          <div key={label}>
            <dt>{label}</dt>
            <dd>{format.number(value, 0)}</dd>
          </div>
        ))}
      </dl>
      {report.errors.length > 0 && (
        <div className="stack">
          <h3>{t("report.problemsTitle", { count: report.error_count })}</h3>
          <div className="table-wrap">
            <table>
              <caption className="visually-hidden">{t("report.problemsTitle", { count: report.error_count })}</caption>
              <thead>
                <tr>
                  <th scope="col">{usesLines ? t("report.line") : t("report.record")}</th>
                  <th scope="col">{t("report.column")}</th>
                  <th scope="col">{t("report.message")}</th>
                </tr>
              </thead>
              <tbody>
                {report.errors.map((error, index) => (
                  <tr key={index}>
                    <td>{where(error, usesLines, t("report.header"))}</td>
                    <td>{error.column ?? "—"}</td>
                    <td>{error.message}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {report.error_count > report.errors.length && (
            <p className="muted">{t("report.moreProblems", { count: report.error_count - report.errors.length })}</p>
          )}
        </div>
      )}
      {report.actions.length > 0 && (
        <details>
          <summary>{report.dry_run ? t("report.actionsDry") : t("report.actions")}</summary>
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">{usesLines ? t("report.line") : t("report.record")}</th>
                  <th scope="col">{t("report.code")}</th>
                  <th scope="col">{t("report.action")}</th>
                </tr>
              </thead>
              <tbody>
                {report.actions.map((action) => (
                  <tr key={action.index}>
                    <td>{usesLines && action.line != null ? action.line : action.index + 1}</td>
                    <td>{action.code ?? "—"}</td>
                    <td>
                      <span className={`badge${action.action === "invalid" ? " bad" : action.action === "create" ? " good" : ""}`}>
                        {t(`action.${action.action}`)}
                      </span>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </details>
      )}
    </section>
  );
}

/** The line of a CSV problem, the record (counted from 1 for a person) of a JSON one. */
function where(error: { line: number | null; index: number | null }, usesLines: boolean, header: string): string {
  if (usesLines && error.line != null) return String(error.line);
  if (error.index != null) return String(error.index + 1);
  return header;
}
