import type { RouteDef } from "../../routes";
import Home from "./Home.svelte";

export const routes: RouteDef[] = [{ path: "/", component: Home, title: "home.title" }];
