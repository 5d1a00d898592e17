import { lineTotal, minorDigits, parseQuantity, quantityDecimal, quantityInputText } from "./quantity";

describe("parseQuantity", () => {
  it("reads a point or a comma as the decimal mark", () => {
    expect(parseQuantity("12.5")).toEqual({ ok: true, value: "12.5" });
    expect(parseQuantity("12,5")).toEqual({ ok: true, value: "12.5" });
    expect(parseQuantity(" 7 ")).toEqual({ ok: true, value: "7" });
  });

  it("takes the last mark as the decimal one when grouping marks come first", () => {
    expect(parseQuantity("1.234,5")).toEqual({ ok: true, value: "1234.5" });
    expect(parseQuantity("1,234.5")).toEqual({ ok: true, value: "1234.5" });
    expect(parseQuantity("1 234,5")).toEqual({ ok: true, value: "1234.5" });
  });

  it("drops zeros that say nothing", () => {
    expect(parseQuantity("007.500")).toEqual({ ok: true, value: "7.5" });
    expect(parseQuantity("0,0")).toEqual({ ok: true, value: "0" });
    expect(parseQuantity(",5")).toEqual({ ok: true, value: "0.5" });
  });

  it("reads an empty field as no quantity", () => {
    expect(parseQuantity("")).toEqual({ ok: true, value: null });
    expect(parseQuantity("   ")).toEqual({ ok: true, value: null });
  });

  it("refuses what the server would refuse, saying why", () => {
    expect(parseQuantity("-3")).toEqual({ ok: false, reason: "negative" });
    expect(parseQuantity("1.2345")).toEqual({ ok: false, reason: "tooPrecise" });
    expect(parseQuantity("twelve")).toEqual({ ok: false, reason: "invalid" });
    expect(parseQuantity("1.2.3")).toEqual({ ok: false, reason: "invalid" });
    expect(parseQuantity("12,34,5")).toEqual({ ok: false, reason: "invalid" });
    expect(parseQuantity(".")).toEqual({ ok: false, reason: "invalid" });
    expect(parseQuantity("123456789012")).toEqual({ ok: false, reason: "tooLarge" });
  });
});

describe("quantity text", () => {
  it("starts an input in the reader's locale, without grouping", () => {
    expect(quantityInputText(1234.5, "de")).toBe("1234,5");
    expect(quantityInputText(1234.5, "en")).toBe("1234.5");
    expect(quantityInputText(null, "en")).toBe("");
  });

  it("turns a stored number back into the decimal the parser gives", () => {
    expect(quantityDecimal(12.5)).toBe("12.5");
    expect(quantityDecimal(100)).toBe("100");
    expect(quantityDecimal(0)).toBe("0");
    expect(quantityDecimal(0.125)).toBe("0.125");
  });
});

describe("lineTotal", () => {
  it("multiplies exactly, without floating-point noise", () => {
    expect(lineTotal("3", "19.99", "EUR")).toBe("59.97");
    expect(lineTotal("0.1", "0.30", "EUR")).toBe("0.03");
    expect(lineTotal(12.5, "39.90", "EUR")).toBe("498.75");
  });

  it("rounds halves up to the currency's minor unit, as the server does", () => {
    expect(lineTotal("0.5", "0.05", "EUR")).toBe("0.03");
    expect(lineTotal("1.005", "1.00", "EUR")).toBe("1.01");
    expect(lineTotal("2.5", "45", "JPY")).toBe("113");
    expect(lineTotal("1.5", "12.345", "KWD")).toBe("18.518");
  });

  it("has no total without a quantity or a price", () => {
    expect(lineTotal(null, "10.00", "EUR")).toBeNull();
    expect(lineTotal("3", null, "EUR")).toBeNull();
    expect(lineTotal("3", "10.00", null)).toBeNull();
  });

  it("knows each currency's decimals", () => {
    expect(minorDigits("EUR")).toBe(2);
    expect(minorDigits("JPY")).toBe(0);
    expect(minorDigits("KWD")).toBe(3);
    expect(minorDigits("not a currency")).toBe(2);
  });
});
