import { describe, expect, it } from "vitest";
import { LANGUAGES, buildCatalogues, catalogues, chooseLanguage, translate, translateWith } from "./index";

describe("catalogues", () => {
  it("every language has every key of the English catalogue, and no key English lacks", () => {
    const english = Object.keys(catalogues.en ?? {}).sort();
    expect(english.length).toBeGreaterThan(20);
    for (const language of LANGUAGES) {
      const own = Object.keys(catalogues[language] ?? {}).sort();
      const missing = english.filter((key) => !own.includes(key));
      const extra = own.filter((key) => !english.includes(key));
      expect({ language, missing, extra }).toEqual({ language, missing: [], extra: [] });
    }
  });

  it("every text keeps the placeholders of its English original", () => {
    const names = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
    for (const language of LANGUAGES) {
      for (const [key, text] of Object.entries(catalogues.en ?? {})) {
        expect({ language, key, names: names(catalogues[language]?.[key] ?? "") }).toEqual({
          language,
          key,
          names: names(text),
        });
      }
    }
  });

  it("keys are prefixed with their area's folder name", () => {
    const sources = import.meta.glob<Record<string, string>>("./catalogues/*/*.json", { eager: true, import: "default" });
    for (const [path, texts] of Object.entries(sources)) {
      const area = /catalogues\/([^/]+)\//.exec(path)?.[1];
      for (const key of Object.keys(texts)) expect(key.startsWith(`${area}.`), `${path}: ${key}`).toBe(true);
    }
  });
});

describe("translate", () => {
  const sources = {
    "./catalogues/x/en.json": { "x.hello": "Hello {name}", "x.items.one": "{count} item", "x.items.other": "{count} items" },
    "./catalogues/x/fr.json": { "x.hello": "Bonjour {name}" },
  };
  it("merges areas and falls back to English, then to the key", () => {
    const merged = buildCatalogues(sources);
    expect(merged.fr?.["x.hello"]).toBe("Bonjour {name}");
    expect(merged.en?.["x.items.one"]).toBe("{count} item");
  });
  it("fills placeholders and picks plural forms", () => {
    const merged = buildCatalogues(sources);
    expect(translateWith(merged, "en", "x.items", { count: 1 })).toBe("1 item");
    expect(translateWith(merged, "en", "x.items", { count: 1200 })).toBe("1,200 items");
    expect(translateWith(merged, "fr", "x.items", { count: 2 })).toBe("2 items");
    expect(translateWith(merged, "fr", "x.hello", { name: "Ana" })).toBe("Bonjour Ana");
    expect(translate("fr", "home.welcome", { name: "Ana" })).toBe("Bienvenue, Ana");
    expect(translate("en", "no.such.key")).toBe("no.such.key");
  });
  it("chooses the stored language, then the browser's, then English", () => {
    expect(chooseLanguage(["de-AT", "en"], null)).toBe("de");
    expect(chooseLanguage(["de-AT"], "el")).toBe("el");
    expect(chooseLanguage(["ja", "zh"], null)).toBe("en");
  });
});
