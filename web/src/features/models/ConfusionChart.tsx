// The confusion matrix as a heat map: recharts' ScatterChart with one square per cell, darker
// for a larger share of its row. Loaded only by this feature's version screen.
import { useTranslation } from "react-i18next";
import { Label, Scatter, ScatterChart, XAxis, YAxis } from "recharts";

import { cellOpacity, tickLabel, type Cell } from "./metrics";

interface ShapeProps {
  cx?: number;
  cy?: number;
  payload?: Cell;
}

function cellSize(count: number): number {
  if (count <= 4) return 64;
  if (count <= 8) return 46;
  if (count <= 16) return 30;
  return 18;
}

export default function ConfusionChart({ labels, cells, title }: { labels: string[]; cells: Cell[]; title: string }) {
  const { t } = useTranslation("models");
  const count = labels.length;
  const size = cellSize(count);
  const axisLeft = 120;
  const axisBottom = 96;
  const margin = 8;
  const width = axisLeft + count * size + margin * 2;
  const height = axisBottom + count * size + margin * 2;
  const ticks = labels.map((_, index) => index);
  const name = (index: unknown) => tickLabel(labels[Number(index)] ?? "");
  const square = (props: ShapeProps) => {
    const { cx, cy, payload } = props;
    if (cx === undefined || cy === undefined || !payload) return <g />;
    const strong = payload.share > 0.55;
    return (
      <g>
        <rect
          className="cm-cell"
          x={cx - size / 2 + 1}
          y={cy - size / 2 + 1}
          width={size - 2}
          height={size - 2}
          rx={3}
          fillOpacity={cellOpacity(payload.share)}
        />
        {size >= 24 && (
          <text className={strong ? "cm-count cm-count-strong" : "cm-count"} x={cx} y={cy} textAnchor="middle" dominantBaseline="central">
            {payload.count}
          </text>
        )}
      </g>
    );
  };
  return (
    <div className="confusion-chart" role="img" aria-label={title}>
      <ScatterChart width={width} height={height} margin={{ top: margin, right: margin, bottom: margin, left: margin }} accessibilityLayer={false}>
        <XAxis
          type="number"
          dataKey="column"
          domain={[-0.5, count - 0.5]}
          ticks={ticks}
          interval={0}
          tickFormatter={name}
          angle={-35}
          textAnchor="end"
          height={axisBottom}
          tickLine={false}
          allowDataOverflow
        >
          <Label value={t("predictedAxis")} position="insideBottom" offset={0} className="cm-axis-label" />
        </XAxis>
        <YAxis
          type="number"
          dataKey="row"
          domain={[-0.5, count - 0.5]}
          ticks={ticks}
          interval={0}
          tickFormatter={name}
          reversed
          width={axisLeft}
          tickLine={false}
          allowDataOverflow
        >
          <Label value={t("actualAxis")} angle={-90} position="insideLeft" className="cm-axis-label" />
        </YAxis>
        <Scatter data={cells} isAnimationActive={false} shape={square} />
      </ScatterChart>
    </div>
  );
}
