// Runs a CommonJS bundle compiled with a V8 code cache (Node 20 keeps none of its own, and
// compiling is most of a short command's start-up): bin/wmb.mjs runs dist/wmb.cjs this way, and
// src/run/guest-runner-loader.cjs runs dist/guest-runner.cjs. Code compiled through node:vm
// cannot call import() itself: bin/wmb.mjs, an ES module, lends globalThis.__wmbImport.
"use strict";
const { mkdirSync, readFileSync, renameSync, writeFileSync } = require("node:fs");
const { dirname } = require("node:path");
const { Script } = require("node:vm");

/**
 * Evaluate `file` as a CommonJS module given `requireFn`, with the code cache in `cacheFile` when
 * V8 accepts it (none when `cacheFile` is undefined). `saveCache()` writes the cache (to `writeTo`,
 * default `cacheFile`) when there was none or V8 rejected it (another Node, another bundle); call
 * it once the code that matters has run, since the cache holds what was compiled by then. A
 * read-only install just runs without one. `saveOnExit` calls it as the process exits (for code
 * that ends with process.exit).
 */
function runCached(file, cacheFile, requireFn, { saveOnExit = false, writeTo = cacheFile } = {}) {
  let cachedData;
  try {
    if (cacheFile !== undefined) cachedData = readFileSync(cacheFile);
  } catch {
    /* first run */
  }
  // The bundles are ASCII (bin/build-dist.mjs: charset "ascii"): latin1 reads them without UTF-8 decoding.
  const source = `(function (exports, require, module, __filename, __dirname) { ${readFileSync(file, "latin1")}\n})`;
  const script = new Script(source, { filename: file, cachedData });
  const accepted = cachedData !== undefined && !script.cachedDataRejected;
  const saveCache = () => {
    if (accepted || writeTo === undefined) return;
    try {
      mkdirSync(dirname(writeTo), { recursive: true });
      const tmp = `${writeTo}.${process.pid}.tmp`;
      writeFileSync(tmp, script.createCachedData());
      renameSync(tmp, writeTo);
    } catch {
      /* not writable: no cache */
    }
  };
  if (saveOnExit) process.on("exit", saveCache);
  const module = { exports: {} };
  script.runInThisContext().call(module.exports, module.exports, requireFn, module, file, dirname(file));
  return { exports: module.exports, saveCache };
}

module.exports = { runCached };
