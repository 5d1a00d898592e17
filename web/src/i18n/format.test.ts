import { convertMeasure, formatMeasure, formatRelative, shownConfidence } from "./format";

describe("units", () => {
  it("shows metric values as the catalog stores them", () => {
    expect(formatMeasure(600, "mm", "metric", "en")).toBe("600 mm");
  });

  it("converts to imperial units for a reader who chose them", () => {
    expect(formatMeasure(25.4, "mm", "imperial", "en")).toBe("1 in");
    expect(convertMeasure(1, "m²", "imperial").unit).toBe("ft²");
  });

  it("formats numbers in the reader's locale", () => {
    expect(formatMeasure(1234.5, "kg", "metric", "de")).toBe("1.234,5 kg");
  });

  it("leaves units it does not know as they are", () => {
    expect(formatMeasure(3, "PEI", "imperial", "en")).toBe("3 PEI");
  });
});

describe("relative times", () => {
  const now = Date.parse("2026-03-10T12:00:00Z");
  const before = (seconds: number) => new Date(now - seconds * 1000).toISOString();

  it("says how long ago in the largest unit that fits", () => {
    expect(formatRelative(before(20), "en", now)).toBe("now");
    expect(formatRelative(before(5 * 60), "en", now)).toBe("5 minutes ago");
    expect(formatRelative(before(3 * 3600), "en", now)).toBe("3 hours ago");
    expect(formatRelative(before(24 * 3600), "en", now)).toBe("yesterday");
    expect(formatRelative(before(15 * 24 * 3600), "en", now)).toBe("2 weeks ago");
  });

  it("speaks the reader's language", () => {
    expect(formatRelative(before(5 * 60), "de", now)).toBe("vor 5 Minuten");
    expect(formatRelative(before(2 * 24 * 3600), "de", now)).toBe("vorgestern");
  });

  it("says how soon for a time still ahead", () => {
    expect(formatRelative(new Date(now + 3 * 24 * 3600 * 1000).toISOString(), "en", now)).toBe("in 3 days");
  });
});

describe("shownConfidence", () => {
  it("rounds down to a tenth of a percent, without binary surprises", () => {
    expect(shownConfidence(0.9999)).toBe(0.999);
    expect(shownConfidence(0.29)).toBe(0.29);
    expect(shownConfidence(0.4567)).toBe(0.456);
  });
});
