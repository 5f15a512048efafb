#!/usr/bin/env node
// Entry point. Runs the prebuilt bundle (dist/wmb.mjs, made by `npm install`) when it is
// newer than every source file, and the TypeScript sources through tsx otherwise.
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

let main;
if (bundleIsFresh()) {
  ({ main } = await import("../dist/wmb.mjs"));
} else {
  const { register } = await import("tsx/esm/api");
  register();
  ({ main } = await import("../src/cli/main.ts"));
}
process.exitCode = await main(process.argv.slice(2));
