// Hash routes (#/alerts/42): the server serves one page at /console/, and a reload keeps the place.
import { writable, type Readable } from "svelte/store";
import { confirmLeave } from "./ui/unsaved";

export interface Match<R> {
  route: R;
  params: Record<string, string>;
}

export function currentPath(): string {
  if (typeof location === "undefined") return "/";
  const hash = location.hash.replace(/^#/, "");
  return hash.startsWith("/") ? hash : "/";
}

const pathStore = writable(currentPath());
export const path: Readable<string> = { subscribe: pathStore.subscribe };

let shown = currentPath();
let restoring = false;

if (typeof window !== "undefined") {
  window.addEventListener("hashchange", () => {
    if (restoring) {
      restoring = false;
      return;
    }
    const next = currentPath();
    if (next !== shown && !confirmLeave()) {
      restoring = true;
      location.hash = `#${shown}`;
      return;
    }
    shown = next;
    pathStore.set(next);
  });
}

export function navigate(to: string): void {
  location.hash = `#${to}`;
}

/** `/alerts/:id` against `/alerts/42` → {id: "42"}; null when it does not match. */
export function matchPath(pattern: string, candidate: string): Record<string, string> | null {
  const [bare] = candidate.split("?");
  const want = pattern.split("/").filter(Boolean);
  const have = (bare ?? "").split("/").filter(Boolean);
  if (want.length !== have.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i += 1) {
    const part = want[i] as string;
    const value = have[i] as string;
    if (part.startsWith(":")) params[part.slice(1)] = decodeURIComponent(value);
    else if (part !== value) return null;
  }
  return params;
}

export function findRoute<R extends { path: string }>(routes: readonly R[], candidate: string): Match<R> | null {
  for (const route of routes) {
    const params = matchPath(route.path, candidate);
    if (params) return { route, params };
  }
  return null;
}

/** The query part of the hash (#/reports?status=new) as URLSearchParams. */
export function hashQuery(candidate: string): URLSearchParams {
  const index = candidate.indexOf("?");
  return new URLSearchParams(index >= 0 ? candidate.slice(index + 1) : "");
}
