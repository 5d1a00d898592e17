// What a model version's `metrics` (free-form JSON from the trainer) holds, read defensively:
// the headline numbers, the per-class scores and the confusion matrix as cells for a chart.
export interface ClassScores {
  label: string;
  precision: number | null;
  recall: number | null;
  f1: number | null;
  support: number | null;
}

export interface Validation {
  method: string | null;
  folds: number | null;
  photos: number | null;
}

/** What fine-tuning made the network the version stands on from (none: ImageNet's as is). */
export interface FineTuning {
  network: string | null;
  epochs: number | null;
  photos: number | null;
  heldOutAccuracy: number | null;
  seconds: number | null;
  device: string | null;
}

export interface Metrics {
  accuracy: number | null;
  macroF1: number | null;
  validation: Validation | null;
  temperature: number | null;
  heldOutUnlike: number | null;
  fineTuning: FineTuning | null;
  perClass: ClassScores[];
  /** The matrix's labels, in the order of its rows and columns. */
  labels: string[];
  /** Rows: the actual label; columns: the predicted one. Null when absent or malformed. */
  matrix: number[][] | null;
}

/** One cell of the confusion matrix: `count` photos of `actual` were called `predicted`. */
export interface Cell {
  column: number;
  row: number;
  actual: string;
  predicted: string;
  count: number;
  /** count as a share of the row (the photos of `actual`): 0..1. */
  share: number;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function number(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function text(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

function readClass(value: unknown): ClassScores | null {
  if (!isObject(value)) return null;
  const label = text(value.label);
  if (label === null) return null;
  return {
    label,
    precision: number(value.precision),
    recall: number(value.recall),
    f1: number(value.f1),
    support: number(value.support),
  };
}

/** A square matrix of non-negative counts, `size` by `size`; else null. */
function readMatrix(value: unknown, size: number): number[][] | null {
  if (!Array.isArray(value) || value.length !== size || size === 0) return null;
  const rows: number[][] = [];
  for (const row of value) {
    if (!Array.isArray(row) || row.length !== size) return null;
    const counts = row.map(number);
    if (counts.some((count) => count === null || count < 0)) return null;
    rows.push(counts as number[]);
  }
  return rows;
}

function readFineTuning(value: unknown): FineTuning | null {
  if (!isObject(value)) return null;
  return {
    network: text(value.network),
    epochs: number(value.epochs),
    photos: number(value.photos),
    heldOutAccuracy: number(value.held_out_accuracy),
    seconds: number(value.training_seconds),
    device: text(value.device),
  };
}

export function readMetrics(metrics: unknown, fallbackLabels: string[] = []): Metrics {
  const source = isObject(metrics) ? metrics : {};
  const perClass = Array.isArray(source.per_class)
    ? source.per_class.map(readClass).filter((row): row is ClassScores => row !== null)
    : [];
  const declared = Array.isArray(source.labels) ? source.labels.filter((label): label is string => typeof label === "string") : [];
  const labels = declared.length ? declared : perClass.length ? perClass.map((row) => row.label) : fallbackLabels;
  const validation = isObject(source.validation)
    ? { method: text(source.validation.method), folds: number(source.validation.folds), photos: number(source.validation.photos) }
    : null;
  return {
    accuracy: number(source.accuracy),
    macroF1: number(source.macro_f1),
    validation,
    temperature: isObject(source.calibration) ? number(source.calibration.temperature) : null,
    heldOutUnlike: isObject(source.unknown) ? number(source.unknown.held_out_unlike) : null,
    fineTuning: readFineTuning(source.fine_tuning),
    perClass,
    labels,
    matrix: readMatrix(source.confusion_matrix, labels.length),
  };
}

/** Every cell of the matrix, row by row, with its share of the row. */
export function confusionCells(labels: string[], matrix: number[][]): Cell[] {
  const cells: Cell[] = [];
  matrix.forEach((counts, row) => {
    const total = counts.reduce((sum, count) => sum + count, 0);
    counts.forEach((count, column) => {
      cells.push({
        column,
        row,
        actual: labels[row] ?? String(row),
        predicted: labels[column] ?? String(column),
        count,
        share: total > 0 ? count / total : 0,
      });
    });
  });
  return cells;
}

/** How strongly a cell is filled: never quite blank, so the grid stays visible. */
export function cellOpacity(share: number): number {
  const clamped = Math.max(0, Math.min(1, share));
  return Math.round((0.06 + 0.94 * clamped) * 1000) / 1000;
}

/** A label short enough for an axis tick; the table beside the chart has it whole. */
export function tickLabel(label: string, max = 14): string {
  return label.length > max ? `${label.slice(0, max - 1)}…` : label;
}

/** The most common confusions (off the diagonal), largest first. */
export function topConfusions(cells: Cell[], limit = 3): Cell[] {
  return cells
    .filter((cell) => cell.row !== cell.column && cell.count > 0)
    .sort((a, b) => b.count - a.count || b.share - a.share)
    .slice(0, limit);
}
