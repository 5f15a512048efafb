// Entry of the guest's runner process (runtime.ts spawns it). Runs dist/guest-runner.cjs (this
// directory's guest-runner.mjs and preview2-shim in one file, made by bin/build-dist.mjs) with a
// V8 code cache while it is newer than guest-runner.mjs, else guest-runner.mjs itself: the
// runner's own start is the critical path of a warm `wmb run` (#12). CommonJS: Node reaches the
// first line of a CommonJS entry a few ms sooner than an ES module's.
"use strict";
const { createRequire } = require("node:module");
const { statSync } = require("node:fs");
const { join } = require("node:path");

const root = join(__dirname, "..", "..");
const bundle = join(root, "dist", "guest-runner.cjs");

function bundleIsFresh() {
  try {
    return statSync(bundle).mtimeMs >= statSync(join(__dirname, "guest-runner.mjs")).mtimeMs;
  } catch {
    return false;
  }
}

if (bundleIsFresh()) {
  // preview2-shim's I/O worker, started first: a worker takes ~30 ms to boot, so it boots while
  // the bundle compiles and runs (the bundle's copy of the shim takes this one, see
  // bin/build-dist.mjs).
  const { MessageChannel, Worker } = require("node:worker_threads");
  const channel = new MessageChannel();
  const worker = new Worker(join(__dirname, "io-worker-loader.cjs"), {
    workerData: { workerPort: channel.port2, debug: false },
    transferList: [channel.port2],
    execArgv: [],
  });
  globalThis.__wmbIoWorker = { channel, worker };
  const { runCached } = require(join(root, "bin", "code-cache.cjs"));
  // The runner ends with process.exit: its cache is written then, the first time.
  runCached(bundle, join(root, "dist", "v8-cache", "guest-runner.bin"), createRequire(bundle), { saveOnExit: true });
} else {
  import("./guest-runner.mjs").catch((e) => {
    process.stderr.write(`wmb run: the guest runner failed to load: ${e?.stack ?? e}\n`);
    process.exit(125);
  });
}
