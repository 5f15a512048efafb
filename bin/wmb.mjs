#!/usr/bin/env node
// Entry point. Runs the prebuilt bundle (dist/wmb.mjs, made by `npm install`) when it is
// newer than every source file, and the TypeScript sources through tsx otherwise.
// The two marks are for --profile (src/trace.ts): when Node handed over, when wmb was loaded.
globalThis.__wmbEntry = performance.now();
import { readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith(".ts")) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

function bundleIsFresh() {
  if (process.env.WMB_FROM_SOURCE === "1") return false;
  try {
    const built = statSync(join(root, "dist/wmb.mjs")).mtimeMs;
    return ["src", "rules", "store"].every((d) => newestSource(join(root, d)) <= built);
  } catch {
    return false;
  }
}

// `wmb --version` is what scripts call most: answered before anything else is loaded.
const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === "--version" || args[0] === "-v")) {
  const { readFileSync } = await import("node:fs");
  process.stdout.write(`${JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version}\n`);
  process.exit(0);
}

/** Colour as src/cli/color.ts decides it (npm's conventions). */
function colorWanted() {
  if (process.env.NO_COLOR) return false;
  const force = process.env.FORCE_COLOR;
  if (force !== undefined && force !== "") return force !== "0" && force !== "false";
  return process.stdout.isTTY === true && process.env.TERM !== "dumb";
}

let main;
if (bundleIsFresh()) {
  // `wmb --help`: rendered when the bundle was built (bin/build-dist.mjs).
  if (args.length === 1 && (args[0] === "--help" || args[0] === "-h")) {
    const { readFileSync } = await import("node:fs");
    try {
      process.stdout.write(readFileSync(join(root, "dist", colorWanted() ? "help.color.txt" : "help.txt")));
      process.exit(0);
    } catch {
      /* an older bundle without it: render below */
    }
  }
  ({ main } = await import("../dist/wmb.mjs"));
} else {
  const { register } = await import("tsx/esm/api");
  register();
  ({ main } = await import("../src/cli/main.ts"));
}
globalThis.__wmbLoaded = performance.now();
process.exitCode = await main(process.argv.slice(2));
