// Copies the API documentation's viewers (Swagger UI, ReDoc) from node_modules into the Python package, so /docs and
// /redoc work without internet. Their licences travel with them.
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "..", "node_modules");
const target = join(here, "..", "..", "backend", "tocsin", "web", "docs-assets");
rmSync(target, { recursive: true, force: true });
mkdirSync(target, { recursive: true });
const files = [
  ["swagger-ui-dist", "swagger-ui-bundle.js"],
  ["swagger-ui-dist", "swagger-ui.css"],
  ["swagger-ui-dist", "LICENSE"],
  ["redoc", "bundles/redoc.standalone.js"],
  ["redoc", "LICENSE"],
];
for (const [pkg, file] of files) {
  const name = file === "LICENSE" ? `${pkg}.LICENSE.txt` : file.split("/").pop();
  copyFileSync(join(modules, pkg, file), join(target, name));
}
console.log(`copied ${files.length} files into ${target}: ${readdirSync(target).join(", ")}`);
