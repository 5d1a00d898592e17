// Translations: each feature brings its own strings (features/<domain>/strings.ts), so adding a
// screen touches one folder. English is the source; German is the second locale.
import i18next from "i18next";
import { initReactI18next } from "react-i18next";

import { strings as common } from "./common";
import { registry } from "./registry";

export const LOCALES = ["en", "de"] as const;
export type Locale = (typeof LOCALES)[number];

export function supported(locale: string | null | undefined): Locale {
  const language = (locale ?? "").toLowerCase().split(/[-_]/)[0];
  return (LOCALES as readonly string[]).includes(language ?? "") ? (language as Locale) : "en";
}

export function setupI18n(locale: string = navigator.language): typeof i18next {
  const resources: Record<string, Record<string, Record<string, string>>> = { en: {}, de: {} };
  for (const [namespace, table] of Object.entries({ common, ...registry })) {
    for (const language of LOCALES) resources[language]![namespace] = table[language];
  }
  void i18next.use(initReactI18next).init({
    resources,
    lng: supported(locale),
    fallbackLng: "en",
    defaultNS: "common",
    interpolation: { escapeValue: false },
    returnNull: false,
  });
  return i18next;
}

export function changeLocale(locale: string): void {
  void i18next.changeLanguage(supported(locale));
  document.documentElement.lang = supported(locale);
}

export type StringTable = Record<Locale, Record<string, string>>;
