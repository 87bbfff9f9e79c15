// The console's pages: hash path, the roles that may open it, and its place in the navigation.
// Each area adds its pages here (the first route whose `home` includes one of the user's roles opens at #/).
import type { Component } from "svelte";
import type { Role } from "../lib/session";
import Home from "./pages/home/Home.svelte";

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

export const routes: RouteDef[] = [{ path: "/", component: Home, title: "home.title" }];
