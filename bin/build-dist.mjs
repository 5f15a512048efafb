#!/usr/bin/env node
// `npm install` runs this (prepare): bundles the engine and CLI into dist/wmb.mjs, so the
// CLI starts without a TypeScript loader. bin/wmb.mjs uses the bundle only while it is newer
// than every source file; otherwise it runs the sources through tsx.
import { build } from "esbuild";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
await build({
  entryPoints: [join(root, "src/cli/main.ts")],
  outfile: join(root, "dist/wmb.mjs"),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  logLevel: "warning",
});
