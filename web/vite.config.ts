import { svelte } from "@sveltejs/vite-plugin-svelte";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// One project, one entry per face: console/ now, the citizen app later. The built files go into the Python package
// (backend/tocsin/web/build/, committed) and are served under /ui/ by tocsin/web/serve.py, so running Tocsin needs
// no Node. Nothing is loaded from another origin: no CDN, no web fonts from elsewhere.
const out = fileURLToPath(new URL("../backend/tocsin/web/build", import.meta.url));

export default defineConfig({
  base: "/ui/",
  plugins: [svelte()],
  build: {
    outDir: out,
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 1200,
    rollupOptions: {
      input: { console: fileURLToPath(new URL("console/index.html", import.meta.url)) },
    },
  },
  server: {
    proxy: {
      "/api": "http://127.0.0.1:8000",
      "/ws": { target: "ws://127.0.0.1:8000", ws: true },
      "/basemap.pmtiles": "http://127.0.0.1:8000",
    },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
