import { mount } from "svelte";
import "../lib/ui/tokens.css";
import App from "./App.svelte";

const target = document.getElementById("app");
if (!target) throw new Error("the console's page has no #app element");
export default mount(App, { target });
