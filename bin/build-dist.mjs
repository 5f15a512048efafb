#!/usr/bin/env node
// `npm install` runs this (prepare): bundles the engine and CLI into dist/wmb.mjs, so the
// CLI starts without a TypeScript loader. bin/wmb.mjs uses the bundle only while it is newer
// than every source file; otherwise it runs the sources through tsx.
import { build } from "esbuild";
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
// Split at every dynamic import(): a command loads only the chunks (and the packages, such as
// better-sqlite3 or jco-transpile) it uses, so `--version` or a no-op build never loads the
// component transpiler. Old chunks are removed first: their names carry content hashes.
rmSync(join(root, "dist"), { recursive: true, force: true });
await build({
  entryPoints: { wmb: join(root, "src/cli/main.ts") },
  outdir: join(root, "dist"),
  outExtension: { ".js": ".mjs" },
  chunkNames: "chunks/[name]-[hash]",
  splitting: true,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  logLevel: "warning",
});
