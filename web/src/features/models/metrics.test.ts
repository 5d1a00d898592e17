import { cellOpacity, confusionCells, readMetrics, tickLabel, topConfusions } from "./metrics";
import { defaultBackbones } from "./TrainForm";
import { parseThreshold } from "./SettingsPage";
import { authorKey } from "./VersionPage";

// As the trainer writes them (src/kai/ml/recognizer.py: classification_metrics).
const trained = {
  accuracy: 0.8889,
  macro_f1: 0.8857,
  per_class: [
    { label: "Granite", precision: 1, recall: 0.6667, f1: 0.8, support: 3 },
    { label: "Marble", precision: 0.75, recall: 1, f1: 0.8571, support: 3 },
    { label: "Slate", precision: 1, recall: 1, f1: 1, support: 3 },
  ],
  labels: ["Granite", "Marble", "Slate"],
  confusion_matrix: [
    [2, 1, 0],
    [0, 3, 0],
    [0, 0, 3],
  ],
  validation: { method: "stratified k-fold", folds: 3, photos: 9 },
  calibration: { temperature: 0.7, log_loss_before: 0.5, log_loss_after: 0.4 },
  unknown: { checks: [], held_out_unlike: 0.1111 },
};

describe("readMetrics", () => {
  it("reads the headline numbers, per-class scores and the matrix", () => {
    const metrics = readMetrics(trained);
    expect(metrics.accuracy).toBe(0.8889);
    expect(metrics.macroF1).toBe(0.8857);
    expect(metrics.validation).toEqual({ method: "stratified k-fold", folds: 3, photos: 9 });
    expect(metrics.temperature).toBe(0.7);
    expect(metrics.heldOutUnlike).toBe(0.1111);
    expect(metrics.perClass.map((row) => row.label)).toEqual(["Granite", "Marble", "Slate"]);
    expect(metrics.perClass[0]).toEqual({ label: "Granite", precision: 1, recall: 0.6667, f1: 0.8, support: 3 });
    expect(metrics.matrix).toEqual(trained.confusion_matrix);
  });

  it("is empty, not broken, for a version still training or failed", () => {
    const metrics = readMetrics({});
    expect(metrics.accuracy).toBeNull();
    expect(metrics.perClass).toEqual([]);
    expect(metrics.matrix).toBeNull();
    expect(readMetrics(null).labels).toEqual([]);
  });

  it("takes the labels from the per-class scores, then from the version, when the metrics lack them", () => {
    const { labels: _labels, ...withoutLabels } = trained;
    expect(readMetrics(withoutLabels).labels).toEqual(["Granite", "Marble", "Slate"]);
    expect(readMetrics({ confusion_matrix: [[1, 0], [0, 1]] }, ["A", "B"]).matrix).toEqual([[1, 0], [0, 1]]);
  });

  it("drops a matrix whose shape does not match its labels, or with odd counts", () => {
    expect(readMetrics({ ...trained, confusion_matrix: [[1, 0], [0, 1]] }).matrix).toBeNull();
    expect(readMetrics({ ...trained, confusion_matrix: [[1, 0, 0], [0, 1], [0, 0, 1]] }).matrix).toBeNull();
    expect(readMetrics({ ...trained, confusion_matrix: [[1, -1, 0], [0, 1, 0], [0, 0, 1]] }).matrix).toBeNull();
    expect(readMetrics({ ...trained, confusion_matrix: "nope" }).matrix).toBeNull();
  });

  it("keeps a class with a missing score, shown as no value", () => {
    const metrics = readMetrics({ per_class: [{ label: "Oak", precision: "high", support: 2 }, { nothing: true }] });
    expect(metrics.perClass).toEqual([{ label: "Oak", precision: null, recall: null, f1: null, support: 2 }]);
  });
});

describe("confusionCells", () => {
  it("gives every cell its labels, count and share of its row", () => {
    const cells = confusionCells(trained.labels, trained.confusion_matrix);
    expect(cells).toHaveLength(9);
    expect(cells[1]).toEqual({ column: 1, row: 0, actual: "Granite", predicted: "Marble", count: 1, share: 1 / 3 });
    expect(cells[4]).toMatchObject({ actual: "Marble", predicted: "Marble", share: 1 });
  });

  it("gives an empty row a share of zero, not NaN", () => {
    const cells = confusionCells(["A", "B"], [[0, 0], [1, 1]]);
    expect(cells.map((cell) => cell.share)).toEqual([0, 0, 0.5, 0.5]);
  });

  it("lists the largest confusions off the diagonal", () => {
    const cells = confusionCells(["A", "B", "C"], [[5, 2, 1], [0, 4, 3], [0, 0, 6]]);
    expect(topConfusions(cells, 2).map((cell) => `${cell.actual}>${cell.predicted}:${cell.count}`)).toEqual(["B>C:3", "A>B:2"]);
    expect(topConfusions(confusionCells(["A", "B"], [[2, 0], [0, 2]]))).toEqual([]);
  });
});

describe("chart helpers", () => {
  it("fills cells from faint to full", () => {
    expect(cellOpacity(0)).toBe(0.06);
    expect(cellOpacity(1)).toBe(1);
    expect(cellOpacity(2)).toBe(1);
    expect(cellOpacity(0.5)).toBeCloseTo(0.53);
  });

  it("shortens long tick labels", () => {
    expect(tickLabel("Granite")).toBe("Granite");
    expect(tickLabel("Natural stone / Granite / Nero Assoluto", 10)).toBe("Natural s…");
  });
});

describe("form helpers", () => {
  it("pre-selects the API's default ensemble among the available backbones", () => {
    expect(defaultBackbones(["efficientnet-lite0", "handcrafted", "custom:tiny"])).toEqual(["efficientnet-lite0", "handcrafted"]);
    expect(defaultBackbones(["custom:tiny", "handcrafted"])).toEqual(["handcrafted"]);
    expect(defaultBackbones(["custom:tiny"])).toEqual(["custom:tiny"]);
  });

  it("reads a threshold typed with a comma or a point", () => {
    expect(parseThreshold("0.4")).toBe(0.4);
    expect(parseThreshold("0,75")).toBe(0.75);
    expect(parseThreshold(" ")).toBeNull();
    expect(parseThreshold("abc")).toBeNull();
  });
});

describe("authorKey", () => {
  it("says who started a training in words", () => {
    expect(authorKey("user:01a2")).toBe("byPerson");
    expect(authorKey("api_key:9f")).toBe("byApiKey");
    expect(authorKey("operator:cli")).toBe("byCli");
    expect(authorKey("robot")).toBe("byOther");
  });
});
