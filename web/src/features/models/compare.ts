// Versions side by side: each figure a row, each version a column, the best of each row marked,
// and every label's F1 per version (labels a version did not learn left empty).
import { readMetrics, type Metrics } from "./metrics";
import type { ModelVersion } from "./api";

export type Better = "higher" | "lower" | null;

export interface ComparedRow {
  key: string;
  values: (number | null)[];
  better: Better;
  /** Indexes of the versions holding the best value (none when fewer than two have one). */
  best: number[];
}

export interface Comparison {
  metrics: Metrics[];
  rows: ComparedRow[];
  labels: string[];
  /** label -> each version's F1 for it. */
  f1: Record<string, (number | null)[]>;
}

/** The versions named in `ids` (a comma-separated list), in that order, each once. */
export function parseIds(raw: string | null): string[] {
  if (!raw) return [];
  const seen = new Set<string>();
  for (const part of raw.split(",")) {
    const id = part.trim();
    if (id) seen.add(id);
  }
  return [...seen];
}

function bestOf(values: (number | null)[], better: Better): number[] {
  const known = values.filter((value): value is number => value !== null);
  if (better === null || known.length < 2) return [];
  const target = better === "higher" ? Math.max(...known) : Math.min(...known);
  if (known.every((value) => value === target)) return [];
  return values.flatMap((value, index) => (value === target ? [index] : []));
}

function row(key: string, values: (number | null)[], better: Better): ComparedRow {
  return { key, values, better, best: bestOf(values, better) };
}

export function compareVersions(versions: ModelVersion[]): Comparison {
  const metrics = versions.map((version) => readMetrics(version.metrics, version.labels.map((label) => label.label)));
  const rows: ComparedRow[] = [
    row("accuracy", metrics.map((m) => m.accuracy), "higher"),
    row("macroF1", metrics.map((m) => m.macroF1), "higher"),
    row("heldOutUnlike", metrics.map((m) => m.heldOutUnlike), "lower"),
    row("photosValidated", metrics.map((m) => m.validation?.photos ?? null), null),
    row("labelsCount", versions.map((version) => version.labels.length || null), null),
    row("fineTunedHeldOut", metrics.map((m) => m.fineTuning?.heldOutAccuracy ?? null), "higher"),
    row("fineTuningSeconds", metrics.map((m) => m.fineTuning?.seconds ?? null), null),
  ].filter((each) => each.values.some((value) => value !== null));
  const labels = [...new Set(metrics.flatMap((m) => m.perClass.map((scores) => scores.label)))].sort((a, b) => a.localeCompare(b));
  const f1: Record<string, (number | null)[]> = {};
  for (const label of labels) {
    f1[label] = metrics.map((m) => m.perClass.find((scores) => scores.label === label)?.f1 ?? null);
  }
  return { metrics, rows, labels, f1 };
}

/** Rows for a grouped bar chart: one per label, a key per version (`v3`) holding its F1. */
export function f1ChartRows(comparison: Comparison, names: string[]): Record<string, string | number | null>[] {
  return comparison.labels.map((label) => {
    const entry: Record<string, string | number | null> = { label };
    names.forEach((name, index) => {
      entry[name] = comparison.f1[label]?.[index] ?? null;
    });
    return entry;
  });
}
