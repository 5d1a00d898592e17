// The confusion matrix's numbers as a table: what the chart shows, readable by everyone.
import { useTranslation } from "react-i18next";

import { useFormat } from "../../i18n/format";

export function ConfusionTable({ labels, matrix }: { labels: string[]; matrix: number[][] }) {
  const { t } = useTranslation("models");
  const format = useFormat();
  return (
    <div className="table-wrap">
      <table className="confusion-table">
        <caption>{t("confusionCaption")}</caption>
        <thead>
          <tr>
            <th scope="col">{t("actualPredicted")}</th>
            {labels.map((label) => (
              <th scope="col" key={label}>
                {label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {matrix.map((counts, row) => (
            <tr key={labels[row] ?? row}>
              <th scope="row">{labels[row]}</th>
              {counts.map((count, column) => (
                <td key={column} className={row === column ? "cm-diagonal" : count > 0 ? "cm-off" : undefined}>
                  {format.number(count, 0)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
