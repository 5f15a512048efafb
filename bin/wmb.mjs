#!/usr/bin/env node
// Entry point. Runs the prebuilt bundle (dist/wmb.cjs, made by `npm install`) when it is
// newer than every source file, and the TypeScript sources through tsx otherwise.
// The two marks are for --profile (src/trace.ts): when Node handed over, when wmb was loaded.
globalThis.__wmbEntry = performance.now();
import { createRequire } from "node:module";
// Built-ins through require: an ES import of node:fs builds its whole export facade (streams too).
const require = createRequire(import.meta.url);
const { readdirSync, statSync, readFileSync } = require("node:fs");
const { dirname, join } = require("node:path");
const { fileURLToPath } = require("node:url");

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

const SOURCE_DIRS = ["src", "rules", "store"];

/** Also names the code that runs, for what wmb keeps between runs that this code made (the
 * no-op memo, src/noop-memo.ts): the bundle's size and mtime, or the newest source's mtime. */
function bundleIsFresh() {
  const newest = Math.max(...SOURCE_DIRS.map((d) => newestSource(join(root, d))));
  const bundle = process.env.WMB_FROM_SOURCE === "1" ? undefined : statSync(join(root, "dist/wmb.cjs"), { throwIfNoEntry: false });
  const fresh = bundle !== undefined && newest <= bundle.mtimeMs;
  globalThis.__wmbCode = fresh ? `bundle ${bundle.size} ${bundle.mtimeMs}` : `source ${newest}`;
  return fresh;
}

// `wmb --version` is what scripts call most: answered before anything else is loaded.
const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === "--version" || args[0] === "-v")) {
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

/** The bundle, with a V8 code cache per command word (dist/v8-cache/build.bin, …), written after
 * the first run of that command (bin/code-cache.cjs). */
async function loadBundle(file, word) {
  const cacheFile = join(root, "dist", "v8-cache", `${/^[a-z][a-z-]{0,30}$/.test(word ?? "") ? word : "other"}.bin`);
  globalThis.__wmbImport = (specifier) => import(specifier);
  const { runCached } = require("./code-cache.cjs");
  const { exports, saveCache } = runCached(file, cacheFile, lazyBuiltins(createRequire(file)));
  return async (argv) => {
    const code = await exports.main(argv);
    saveCache();
    return code;
  };
}

/** Built-ins the bundle names at the top of modules most commands never call into (a no-op
 * build spawns nothing and hashes nothing with node:crypto): loaded on first use instead. */
const LAZY_BUILTINS = new Set(["child_process", "crypto", "worker_threads", "zlib", "net", "readline", "stream", "perf_hooks", "tty"]);

function lazyBuiltins(load) {
  const lazy = (id) => {
    if (!LAZY_BUILTINS.has(id.startsWith("node:") ? id.slice(5) : id)) return load(id);
    let real;
    const target = () => (real ??= load(id));
    return new Proxy({}, {
      get: (_, key) => target()[key],
      // Asked by every `import x from` of a built-in (bundlers' interop): no built-in has them.
      has: (_, key) => (key === "default" || key === "__esModule" ? false : key in target()),
      ownKeys: () => Reflect.ownKeys(target()),
      getOwnPropertyDescriptor: (_, key) => {
        const d = Reflect.getOwnPropertyDescriptor(target(), key);
        return d && { ...d, configurable: true };
      },
    });
  };
  return Object.assign(lazy, { resolve: load.resolve, cache: load.cache });
}

/** `wmb run` on this host (no --target, no help): its guest's runner is started before wmb itself
 * loads, to start up alongside it (src/run/runtime.ts adopts it; it gets nothing until the
 * machine is checked). */
function runsGuestHere(argv) {
  if (argv[0] !== "run") return false;
  const ours = argv.includes("--") ? argv.slice(0, argv.indexOf("--")) : argv;
  return !ours.some((a) => a === "--target" || a.startsWith("--target=") || a === "-h" || a === "--help");
}
if (runsGuestHere(args)) {
  globalThis.__wmbEarlyRunner = require("../src/run/runner-process.cjs").spawnRunner([0, 1, 2]);
}

let main;
if (bundleIsFresh()) {
  // `wmb --help`: rendered when the bundle was built (bin/build-dist.mjs).
  if (args.length === 1 && (args[0] === "--help" || args[0] === "-h")) {
    try {
      process.stdout.write(readFileSync(join(root, "dist", colorWanted() ? "help.color.txt" : "help.txt")));
      process.exit(0);
    } catch {
      /* an older bundle without it: render below */
    }
  }
  main = await loadBundle(join(root, "dist/wmb.cjs"), args[0]);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  ({ main } = await import("../src/cli/main.ts"));
}
globalThis.__wmbLoaded = performance.now();
let code;
try {
  code = await main(process.argv.slice(2));
} finally {
  // Not adopted (a usage error, a machine that failed to resolve): it must not outlive us.
  globalThis.__wmbEarlyRunner?.child.kill("SIGKILL");
}
// Everything wmb does is awaited by then: exit at once rather than let Node free the heap and
// the environment first, which takes several ms on a short command (#12). Output still queued
// (stdout to a pipe is asynchronous outside Linux) is written first.
for (const stream of [process.stdout, process.stderr]) {
  if (stream.writableLength > 0) await new Promise((resolve) => stream.once("drain", resolve).once("error", resolve));
}
process.exit(code);
