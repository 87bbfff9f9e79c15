// "Navigating away from unsaved work asks first": a page registers a check; the router and the browser's
// beforeunload both ask before leaving.
import { get } from "svelte/store";
import { t } from "../i18n";

const checks = new Set<() => boolean>();

/** Register `isDirty`; returns the unregister. Use in a page's $effect or onMount. */
export function guardUnsaved(isDirty: () => boolean): () => void {
  checks.add(isDirty);
  return () => checks.delete(isDirty);
}

export function hasUnsavedWork(): boolean {
  for (const check of checks) if (check()) return true;
  return false;
}

/** True when leaving is fine (nothing unsaved, or the user agreed). */
export function confirmLeave(): boolean {
  if (!hasUnsavedWork()) return true;
  return window.confirm(get(t)("common.unsavedLeave"));
}

if (typeof window !== "undefined") {
  window.addEventListener("beforeunload", (event) => {
    if (hasUnsavedWork()) event.preventDefault();
  });
}
