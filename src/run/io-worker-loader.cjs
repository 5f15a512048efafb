// Entry of preview2-shim's I/O worker thread in the guest's runner (guest-runner-loader.cjs
// starts it): dist/io-worker.cjs, the shim's worker bundle as CommonJS (bin/build-dist.mjs), run
// with a V8 code cache. A worker takes ~30 ms to boot, on the critical path of a warm `wmb run`
// (#12); the cache saves compiling its bundle on top of that.
"use strict";
const { join } = require("node:path");
const { runCached } = require("../../bin/code-cache.cjs");

const dist = join(__dirname, "..", "..", "dist");
// Nothing else runs in this thread: the cache holds the bundle's top level, written the first time.
runCached(join(dist, "io-worker.cjs"), join(dist, "v8-cache", "io-worker.bin"), require).saveCache();
