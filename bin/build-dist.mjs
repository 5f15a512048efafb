#!/usr/bin/env node
// `npm install` runs this (prepare): bundles the engine and CLI into one CommonJS file,
// dist/wmb.cjs, so the CLI starts without a TypeScript loader. bin/wmb.mjs uses the bundle only
// while it is newer than every source file (otherwise it runs the sources through tsx), and
// compiles it with a V8 code cache (docs/ARCHITECTURE.md, "Start-up").
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
rmSync(join(root, "dist"), { recursive: true, force: true });
await build({
  entryPoints: { wmb: join(root, "src/cli/main.ts") },
  outdir: join(root, "dist"),
  outExtension: { ".js": ".cjs" },
  // One file, not ES chunks: Node 20 keeps no code cache for ES modules, and resolving, reading
  // and linking a dozen chunks costs more than one file. A module reached only through a
  // dynamic import() stays lazy: esbuild runs its top level on first import.
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  // Pure-JS packages on the start-up path (clipanion, typanion, @noble/hashes, better-sqlite3's JavaScript) are bundled: Node
  // would load an external package file by file. Native addons and the big, lazily used
  // packages stay external (loaded through src/import-module.ts or require).
  external: ["@napi-rs/*", "@yowasp/*", "@bytecodealliance/*", "esbuild", "tsx", "tsx/*", "typescript", "tar"],
  define: { "import.meta.url": "__wmbBundleUrl" },
  // Whitespace only: names stay, so a stack trace still reads.
  minifyWhitespace: true,
  banner: { js: 'const __wmbBundleUrl = require("node:url").pathToFileURL(__filename).href;' },
  logLevel: "warning",
});

// `wmb --help`, rendered once here (plain and coloured), so bin/wmb.mjs prints it without
// loading the command parser.
for (const [file, color] of [["help.txt", { NO_COLOR: "1" }], ["help.color.txt", { FORCE_COLOR: "1" }]]) {
  const env = { ...process.env, ...color, WMB_FROM_SOURCE: "" };
  delete env[color.NO_COLOR ? "FORCE_COLOR" : "NO_COLOR"];
  writeFileSync(join(root, "dist", file), execFileSync(process.execPath, [join(root, "bin/wmb.mjs"), "--help"], { env }));
}
