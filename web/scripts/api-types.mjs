// The API's types come from the OpenAPI document, not written twice: dump it from the Python app, then generate
// src/lib/api/schema.d.ts with openapi-typescript. A test on the Python side fails when the committed copy is stale.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const python = process.env.PYTHON ?? join(repo, ".venv", "bin", "python");
const document = execFileSync(python, ["-m", "tocsin.cli", "openapi"], {
  cwd: repo,
  env: { ...process.env, PYTHONPATH: join(repo, "backend") },
  maxBuffer: 64 * 1024 * 1024,
});
const target = join(here, "..", "src", "lib", "api", "openapi.json");
writeFileSync(target, document);
execFileSync(join(here, "..", "node_modules", ".bin", "openapi-typescript"), [target, "-o", join(here, "..", "src", "lib", "api", "schema.d.ts")], {
  stdio: "inherit",
});
