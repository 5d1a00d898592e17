import { compareVersions, f1ChartRows, parseIds } from "./compare";
import type { ModelVersion } from "./api";

function version(number: number, metrics: Record<string, unknown>): ModelVersion {
  return {
    id: `v${number}`,
    number,
    status: "ready",
    active: number === 1,
    labels: [],
    backbones: [],
    options: {},
    metrics,
  } as unknown as ModelVersion;
}

const older = version(1, {
  accuracy: 0.8,
  macro_f1: 0.78,
  unknown: { held_out_unlike: 0.05 },
  per_class: [
    { label: "Marble", f1: 0.9 },
    { label: "Granite", f1: 0.6 },
  ],
});
const newer = version(2, {
  accuracy: 0.9,
  macro_f1: 0.9,
  unknown: { held_out_unlike: 0.05 },
  per_class: [
    { label: "Marble", f1: 0.95 },
    { label: "Slate", f1: 0.8 },
  ],
  fine_tuning: { network: "efficientnet-lite0", epochs: 8, held_out_accuracy: 0.92, training_seconds: 180 },
});

describe("compareVersions", () => {
  it("marks the best of each figure, in the direction that is better", () => {
    const rows = Object.fromEntries(compareVersions([older, newer]).rows.map((row) => [row.key, row]));
    expect(rows.accuracy?.values).toEqual([0.8, 0.9]);
    expect(rows.accuracy?.best).toEqual([1]);
    expect(rows.macroF1?.best).toEqual([1]);
    // A tie is no one's best.
    expect(rows.heldOutUnlike?.best).toEqual([]);
    // Only one version was fine-tuned: there is nothing to beat, so nothing is marked.
    expect(rows.fineTunedHeldOut?.values).toEqual([null, 0.92]);
    expect(rows.fineTunedHeldOut?.best).toEqual([]);
  });

  it("leaves out figures no version has, and lines labels up across versions", () => {
    const comparison = compareVersions([older, newer]);
    expect(comparison.rows.map((row) => row.key)).not.toContain("photosValidated");
    expect(comparison.labels).toEqual(["Granite", "Marble", "Slate"]);
    expect(comparison.f1.Granite).toEqual([0.6, null]);
    expect(comparison.f1.Slate).toEqual([null, 0.8]);
    expect(f1ChartRows(comparison, ["Version 1", "Version 2"])[1]).toEqual({ label: "Marble", "Version 1": 0.9, "Version 2": 0.95 });
  });

  it("reads the fine-tuning report of a version that has one", () => {
    const [, tuned] = compareVersions([older, newer]).metrics;
    expect(tuned?.fineTuning).toEqual({ network: "efficientnet-lite0", epochs: 8, photos: null, heldOutAccuracy: 0.92, seconds: 180, device: null });
  });
});

describe("parseIds", () => {
  it("keeps each id once, in order, and ignores blanks", () => {
    expect(parseIds("a, b,,a ,c")).toEqual(["a", "b", "c"]);
    expect(parseIds(null)).toEqual([]);
  });
});
