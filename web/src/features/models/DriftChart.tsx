// Drift over time: each window's population stability indexes and unknown share as lines, the
// drift threshold as a dashed line. recharts; loaded only by the drift screen.
import { useTranslation } from "react-i18next";
import { CartesianGrid, Legend, Line, LineChart, ReferenceLine, Tooltip, XAxis, YAxis } from "recharts";

export interface DriftPoint {
  when: string;
  confidence: number;
  labels: number;
  unknown: number;
}

export default function DriftChart({ points, threshold }: { points: DriftPoint[]; threshold: number }) {
  const { t } = useTranslation("models");
  return (
    <div role="img" aria-label={t("driftChartLabel")} className="drift-chart">
      <LineChart width={720} height={280} data={points} margin={{ top: 8, right: 16, bottom: 8, left: 0 }}>
        <CartesianGrid strokeDasharray="3 3" />
        <XAxis dataKey="when" />
        <YAxis />
        <Tooltip />
        <Legend />
        <ReferenceLine y={threshold} stroke="#b42318" strokeDasharray="6 4" label={t("driftThreshold")} />
        <Line type="monotone" dataKey="confidence" name={t("psiConfidence")} stroke="#1f6f5c" isAnimationActive={false} />
        <Line type="monotone" dataKey="labels" name={t("psiLabels")} stroke="#4c78a8" isAnimationActive={false} />
        <Line type="monotone" dataKey="unknown" name={t("unknownShare")} stroke="#f58518" isAnimationActive={false} />
      </LineChart>
    </div>
  );
}
