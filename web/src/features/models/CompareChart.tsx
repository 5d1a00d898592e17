// Every label's F1, a bar per version side by side. recharts; loaded only by the comparison.
import { useTranslation } from "react-i18next";
import { Bar, BarChart, CartesianGrid, Legend, Tooltip, XAxis, YAxis } from "recharts";

const COLOURS = ["#1f6f5c", "#4c78a8", "#f58518", "#b279a2"];

export default function CompareChart({ rows, names }: { rows: Record<string, string | number | null>[]; names: string[] }) {
  const { t } = useTranslation("models");
  return (
    <div role="img" aria-label={t("compareChartLabel")} className="compare-chart">
      <BarChart width={Math.max(480, rows.length * 36 * names.length)} height={280} data={rows} margin={{ top: 8, right: 16, bottom: 8, left: 0 }}>
        <CartesianGrid strokeDasharray="3 3" />
        <XAxis dataKey="label" />
        <YAxis domain={[0, 1]} />
        <Tooltip />
        <Legend />
        {names.map((name, index) => (
          <Bar key={name} dataKey={name} fill={COLOURS[index % COLOURS.length]} isAnimationActive={false} />
        ))}
      </BarChart>
    </div>
  );
}
