// The console's texts: message catalogues per area and language (catalogues/<area>/<lang>.json, flat keys prefixed
// with the area). The language comes from the browser, can be switched, and is remembered on this device.
// Placeholders are {name}; plurals pick `key.one` / `key.other` (Intl.PluralRules) when `count` is given.
import { derived, get, writable, type Readable } from "svelte/store";

export const LANGUAGES = ["en", "fr", "de", "it", "es", "nl", "pl", "pt", "el"] as const;
export type Language = (typeof LANGUAGES)[number];
export const LANGUAGE_NAMES: Record<Language, string> = {
  en: "English",
  fr: "Français",
  de: "Deutsch",
  it: "Italiano",
  es: "Español",
  nl: "Nederlands",
  pl: "Polski",
  pt: "Português",
  el: "Ελληνικά",
};

export type Catalogue = Record<string, string>;
export type Vars = Record<string, string | number>;

const files = import.meta.glob<Catalogue>("./catalogues/*/*.json", { eager: true, import: "default" });

/** language -> key -> text, merged from every area's file. */
export function buildCatalogues(sources: Record<string, Catalogue>): Record<string, Catalogue> {
  const merged: Record<string, Catalogue> = {};
  for (const [path, texts] of Object.entries(sources)) {
    const match = /\/catalogues\/([^/]+)\/([a-z]{2})\.json$/.exec(path);
    if (!match) continue;
    const language = match[2] as string;
    merged[language] = { ...(merged[language] ?? {}), ...texts };
  }
  return merged;
}

export const catalogues = buildCatalogues(files);

const STORAGE_KEY = "tocsin.language";

export function chooseLanguage(preferred: readonly string[], stored: string | null): Language {
  const candidates = stored ? [stored, ...preferred] : preferred;
  for (const tag of candidates) {
    const base = tag.toLowerCase().split("-")[0] as Language;
    if ((LANGUAGES as readonly string[]).includes(base)) return base;
  }
  return "en";
}

function initialLanguage(): Language {
  if (typeof navigator === "undefined") return "en";
  let stored: string | null = null;
  try {
    stored = localStorage.getItem(STORAGE_KEY);
  } catch {
    /* storage disabled */
  }
  return chooseLanguage(navigator.languages ?? [navigator.language], stored);
}

export const locale = writable<Language>(initialLanguage());

locale.subscribe((language) => {
  if (typeof document !== "undefined") document.documentElement.lang = language;
  try {
    if (typeof localStorage !== "undefined") localStorage.setItem(STORAGE_KEY, language);
  } catch {
    /* storage disabled */
  }
});

export function translate(language: string, key: string, vars: Vars = {}): string {
  return translateWith(catalogues, language, key, vars);
}

export function translateWith(from: Record<string, Catalogue>, language: string, key: string, vars: Vars = {}): string {
  const own = from[language] ?? {};
  const english = from.en ?? {};
  let text: string | undefined;
  if (typeof vars.count === "number") {
    const form = new Intl.PluralRules(language).select(vars.count);
    text = own[`${key}.${form}`] ?? own[`${key}.other`] ?? english[`${key}.${form}`] ?? english[`${key}.other`];
  }
  text ??= own[key] ?? english[key];
  if (text === undefined) return key; // visible, and the catalogue test fails before it ships
  return text.replace(/\{(\w+)\}/g, (whole, name: string) => {
    const value = vars[name];
    if (value === undefined) return whole;
    return typeof value === "number" ? formatNumber(value, language) : value;
  });
}

export type Translate = (key: string, vars?: Vars) => string;

/** `$t("alerts.title")` in components. */
export const t: Readable<Translate> = derived(locale, (language) => (key: string, vars?: Vars) =>
  translate(language, key, vars),
);

export function formatNumber(value: number, language: string = get(locale), options?: Intl.NumberFormatOptions): string {
  return new Intl.NumberFormat(language, options).format(value);
}

export function formatPercent(share: number, language: string = get(locale)): string {
  return new Intl.NumberFormat(language, { style: "percent", maximumFractionDigits: 1 }).format(share);
}

/** Dates and times in the reader's language and time zone, with the zone named (crisis rooms span borders). */
export function formatDateTime(value: string | Date | null | undefined, language: string = get(locale)): string {
  if (value === null || value === undefined || value === "") return "—";
  const date = typeof value === "string" ? new Date(value) : value;
  if (Number.isNaN(date.getTime())) return String(value);
  return new Intl.DateTimeFormat(language, { dateStyle: "medium", timeStyle: "short", timeZoneName: "short" }).format(
    date,
  );
}

export function formatTime(value: string | Date | null | undefined, language: string = get(locale)): string {
  if (value === null || value === undefined || value === "") return "—";
  const date = typeof value === "string" ? new Date(value) : value;
  return new Intl.DateTimeFormat(language, { timeStyle: "short" }).format(date);
}
