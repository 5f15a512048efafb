// Entry of the guest's runner process (runtime.ts spawns it). Runs dist/guest-runner.cjs (this
// directory's guest-runner.mjs and preview2-shim in one file, made by bin/build-dist.mjs) with a
// V8 code cache while it is newer than guest-runner.mjs, else guest-runner.mjs itself: the
// runner's own start is the critical path of a warm `wmb run` (#12).
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { statSync } = require("node:fs");
const { dirname, join } = require("node:path");
const { fileURLToPath } = require("node:url");

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const bundle = join(root, "dist", "guest-runner.cjs");

function bundleIsFresh() {
  try {
    return statSync(bundle).mtimeMs >= statSync(join(here, "guest-runner.mjs")).mtimeMs;
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
  const worker = new Worker(join(here, "io-worker-loader.cjs"), {
    workerData: { workerPort: channel.port2, debug: false },
    transferList: [channel.port2],
    execArgv: [],
  });
  globalThis.__wmbIoWorker = { channel, worker };
  globalThis.__wmbImport = (specifier) => import(specifier);
  const { runCached } = require(join(root, "bin", "code-cache.cjs"));
  // The runner ends with process.exit: its cache is written then, the first time.
  runCached(bundle, join(root, "dist", "v8-cache", "guest-runner.bin"), createRequire(bundle), { saveOnExit: true });
} else {
  await import("./guest-runner.mjs");
}
