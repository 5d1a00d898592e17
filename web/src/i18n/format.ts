// Numbers, dates and units in the person's locale and unit system.
import { useTranslation } from "react-i18next";

import { usePreferences } from "../app/preferences";

export function useFormat() {
  const { i18n } = useTranslation();
  const { units } = usePreferences();
  const locale = i18n.language;
  return {
    locale,
    units,
    number: (value: number, digits = 2) =>
      new Intl.NumberFormat(locale, { maximumFractionDigits: digits }).format(value),
    percent: (value: number) => formatPercent(value, locale),
    /** A recognition's confidence: wherever it shows, 99.99% never reads "100%". */
    confidence: (value: number) => formatPercent(shownConfidence(value), locale),
    date: (iso: string) => new Intl.DateTimeFormat(locale, { dateStyle: "medium" }).format(new Date(iso)),
    dateTime: (iso: string) =>
      new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso)),
    relative: (iso: string) => formatRelative(iso, locale),
    money: (amount: string | number, currency: string) =>
      new Intl.NumberFormat(locale, { style: "currency", currency }).format(Number(amount)),
    measure: (value: number, unit: string) => formatMeasure(value, unit, units, locale),
  };
}

function formatPercent(value: number, locale: string): string {
  return new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 1 }).format(value);
}

/**
 * A confidence as it is shown: rounded down to a tenth of a percent, so that 99.99% never
 * reads "100%" (no answer is certain, and an unsure one must not look certain).
 */
export function shownConfidence(value: number): number {
  // The epsilon keeps 0.29 (289.99999… thousandths in binary) at 29%.
  return Math.floor(value * 1000 + 1e-9) / 1000;
}

// The largest unit that fits is the one people say: "3 hours ago", not "180 minutes ago".
const RELATIVE_UNITS: [Intl.RelativeTimeFormatUnit, number][] = [
  ["year", 365 * 24 * 3600],
  ["month", 30 * 24 * 3600],
  ["week", 7 * 24 * 3600],
  ["day", 24 * 3600],
  ["hour", 3600],
  ["minute", 60],
];

/** How long ago (or how soon) `iso` is from `now`, in the reader's words: "yesterday", "vor 5 Minuten". */
export function formatRelative(iso: string, locale: string, now: number = Date.now()): string {
  const seconds = (new Date(iso).getTime() - now) / 1000;
  const format = new Intl.RelativeTimeFormat(locale, { numeric: "auto" });
  for (const [unit, size] of RELATIVE_UNITS) {
    if (Math.abs(seconds) >= size) return format.format(Math.round(seconds / size), unit);
  }
  return format.format(0, "second");
}

// Metric units the catalog stores, and how an imperial reader sees them.
const IMPERIAL: Record<string, { unit: string; factor: number }> = {
  mm: { unit: "in", factor: 1 / 25.4 },
  cm: { unit: "in", factor: 1 / 2.54 },
  m: { unit: "ft", factor: 3.28084 },
  m2: { unit: "ft²", factor: 10.7639 },
  "m²": { unit: "ft²", factor: 10.7639 },
  kg: { unit: "lb", factor: 2.20462 },
  g: { unit: "oz", factor: 0.035274 },
  "kg/m2": { unit: "lb/ft²", factor: 0.204816 },
  "kg/m²": { unit: "lb/ft²", factor: 0.204816 },
  "kg/m3": { unit: "lb/ft³", factor: 0.062428 },
  "kg/m³": { unit: "lb/ft³", factor: 0.062428 },
  l: { unit: "gal", factor: 0.264172 },
};

export function convertMeasure(value: number, unit: string, units: string): { value: number; unit: string } {
  const imperial = units === "imperial" ? IMPERIAL[unit] : undefined;
  return imperial ? { value: value * imperial.factor, unit: imperial.unit } : { value, unit };
}

export function formatMeasure(value: number, unit: string, units: string, locale: string): string {
  const shown = convertMeasure(value, unit, units);
  const number = new Intl.NumberFormat(locale, { maximumFractionDigits: 2 }).format(shown.value);
  return shown.unit ? `${number} ${shown.unit}` : number;
}
