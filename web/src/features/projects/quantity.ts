// Quantities as people type them (in their locale) and what a line comes to, in exact decimals:
// the server keeps quantities to three decimals and prices to the currency's minor unit, so a
// preview computed in floating point could differ from the total it will show after saving.

export const MAX_QUANTITY_DECIMALS = 3;
// The server's Decimal(14, 3): eleven digits before the point.
const MAX_WHOLE_DIGITS = 11;

export type QuantityParse =
  | { ok: true; value: string | null }
  | { ok: false; reason: "invalid" | "negative" | "tooPrecise" | "tooLarge" };

/**
 * A typed quantity as a plain decimal string (`"12.5"`), or null when the field was emptied.
 * Either `,` or `.` may be the decimal mark; with both, the last one is, the others group.
 */
export function parseQuantity(text: string): QuantityParse {
  const trimmed = text.replace(/[\s\u00a0\u202f']/g, "");
  if (trimmed === "") return { ok: true, value: null };
  if (trimmed.startsWith("-")) return { ok: false, reason: "negative" };
  if (!/^\+?[0-9.,]+$/.test(trimmed)) return { ok: false, reason: "invalid" };
  const digits = trimmed.replace(/^\+/, "");
  const mark = Math.max(digits.lastIndexOf(","), digits.lastIndexOf("."));
  let whole = mark < 0 ? digits : digits.slice(0, mark);
  const fraction = mark < 0 ? "" : digits.slice(mark + 1);
  if (/[.,]/.test(fraction)) return { ok: false, reason: "invalid" };
  // Grouping marks before the decimal one: "1.234,5" or "1,234.5".
  if (/[.,]/.test(whole)) {
    if (!/^[0-9]{1,3}([.,][0-9]{3})+$/.test(whole)) return { ok: false, reason: "invalid" };
    whole = whole.replace(/[.,]/g, "");
  }
  if (whole === "" && fraction === "") return { ok: false, reason: "invalid" };
  const trimmedFraction = fraction.replace(/0+$/, "");
  if (trimmedFraction.length > MAX_QUANTITY_DECIMALS) return { ok: false, reason: "tooPrecise" };
  const wholeDigits = whole.replace(/^0+(?=[0-9])/, "") || "0";
  if (wholeDigits.length > MAX_WHOLE_DIGITS) return { ok: false, reason: "tooLarge" };
  return { ok: true, value: trimmedFraction ? `${wholeDigits}.${trimmedFraction}` : wholeDigits };
}

/** A stored quantity as the text an input starts with: the locale's decimal mark, no grouping. */
export function quantityInputText(quantity: number | null | undefined, locale: string): string {
  if (quantity === null || quantity === undefined) return "";
  return new Intl.NumberFormat(locale, { maximumFractionDigits: MAX_QUANTITY_DECIMALS, useGrouping: false }).format(
    quantity,
  );
}

/** How many decimals a currency's amounts have (ISO 4217: 2 for EUR, 0 for JPY, 3 for KWD). */
export function minorDigits(currency: string | null | undefined): number {
  if (!currency) return 2;
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits ?? 2;
  } catch {
    return 2;
  }
}

interface Scaled {
  units: bigint;
  scale: number;
}

function scaled(decimal: string): Scaled | null {
  const match = /^([0-9]+)(?:\.([0-9]+))?$/.exec(decimal.trim());
  if (!match) return null;
  const fraction = match[2] ?? "";
  return { units: BigInt(match[1]! + fraction), scale: fraction.length };
}

/**
 * Quantity times price to the currency's minor unit, halves rounded up as the server rounds
 * them; null without a quantity or a price, as the server answers `line_total`.
 */
export function lineTotal(
  quantity: string | number | null | undefined,
  price: string | null | undefined,
  currency: string | null | undefined,
): string | null {
  if (quantity === null || quantity === undefined || !price || !currency) return null;
  const q = scaled(typeof quantity === "number" ? quantityDecimal(quantity) : quantity);
  const p = scaled(price);
  if (!q || !p) return null;
  const digits = minorDigits(currency);
  const product = q.units * p.units;
  const scale = q.scale + p.scale;
  let amount: bigint;
  if (scale <= digits) {
    amount = product * 10n ** BigInt(digits - scale);
  } else {
    const divisor = 10n ** BigInt(scale - digits);
    amount = (product * 2n + divisor) / (divisor * 2n);
  }
  return withPoint(amount, digits);
}

/** A stored quantity (a JSON number) as the decimal string `parseQuantity` gives. */
export function quantityDecimal(quantity: number): string {
  return quantity.toFixed(MAX_QUANTITY_DECIMALS).replace(/\.?0+$/, "") || "0";
}

function withPoint(amount: bigint, digits: number): string {
  if (digits === 0) return amount.toString();
  const text = amount.toString().padStart(digits + 1, "0");
  return `${text.slice(0, -digits)}.${text.slice(-digits)}`;
}

/** The units people count materials in, offered as suggestions (any short text is accepted). */
export const UNIT_SUGGESTIONS = ["m2", "m", "pcs", "box", "pallet", "kg", "t", "l", "m3"] as const;
