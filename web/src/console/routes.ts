// The console's pages: hash path, the roles that may open it, and its place in the navigation.
// Each area declares its own pages in pages/<area>/routes.ts (`export const routes: RouteDef[]`); they are collected
// here, so areas never edit a shared list. The first route whose `home` includes one of the user's roles opens at #/.
import type { Component } from "svelte";
import type { Role } from "../lib/session";

export interface RouteDef {
  path: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  component: Component<any>;
  /** Roles that may open the page; empty or absent: every signed-in account. */
  roles?: Role[];
  /** Shown in the navigation under this catalogue key, ordered by `order`. */
  nav?: { label: string; order: number };
  /** The page's title (catalogue key), for the document title. */
  title: string;
  /** This page is the start page (#/) for these roles. */
  home?: Role[];
}

const areas = import.meta.glob<RouteDef[]>("./pages/*/routes.ts", { eager: true, import: "routes" });

/** More specific paths first, so `/alerts/new` wins over `/alerts/:id` whatever the areas' order. */
function specificity(route: RouteDef): number[] {
  return route.path.split("/").map((part) => (part.startsWith(":") ? 1 : 2));
}

export function orderRoutes(list: RouteDef[]): RouteDef[] {
  return [...list].sort((a, b) => {
    const left = specificity(a);
    const right = specificity(b);
    for (let i = 0; i < Math.max(left.length, right.length); i += 1) {
      const difference = (right[i] ?? 0) - (left[i] ?? 0);
      if (difference !== 0) return difference;
    }
    return 0;
  });
}

export const routes: RouteDef[] = orderRoutes(Object.values(areas).flat());
