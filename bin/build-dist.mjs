#!/usr/bin/env node
// `npm install` runs this (prepare): bundles the engine and CLI into dist/wmb.mjs, so the
// CLI starts without a TypeScript loader. bin/wmb.mjs uses the bundle only while it is newer
// than every source file; otherwise it runs the sources through tsx.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

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

// `wmb --help`, rendered once here (plain and coloured), so bin/wmb.mjs prints it without
// loading the command parser.
for (const [file, color] of [["help.txt", { NO_COLOR: "1" }], ["help.color.txt", { FORCE_COLOR: "1" }]]) {
  const env = { ...process.env, ...color };
  delete env[color.NO_COLOR ? "FORCE_COLOR" : "NO_COLOR"];
  const run = `const { main } = await import(${JSON.stringify(pathToFileURL(join(root, "dist/wmb.mjs")).href)}); process.exitCode = await main(["--help"]);`;
  writeFileSync(join(root, "dist", file), execFileSync(process.execPath, ["--input-type=module", "-e", run], { env }));
}
