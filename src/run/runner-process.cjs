// Starts the guest's runner process (guest-runner-loader.cjs): one place for how, used by
// runtime.ts and, for a plain `wmb run`, by bin/wmb.mjs before anything else loads (the
// runner's own start-up is the critical path of a warm run, #12).
"use strict";
const { spawn } = require("node:child_process");
const { join } = require("node:path");

const LOADER = join(__dirname, "guest-runner-loader.cjs");

/**
 * Spawn a runner with these stdio (fd 3 is always the config/report channel) and `closed`, its
 * end, listened for from the start. `shownAs` only names the process in `ps`. Nothing of the
 * host environment reaches it (NODE_OPTIONS included); the guest's own environment is set inside
 * the runner and is exactly HOME=/. It moves into the rootfs once it has its config.
 */
function spawnRunner(stdio, shownAs) {
  const child = spawn(process.execPath, ["--no-warnings", LOADER, ...(shownAs ? [shownAs] : [])], {
    stdio: [...stdio, "pipe"],
    env: {},
    cwd: "/",
  });
  const closed = new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ code, signal }));
  });
  closed.catch(() => {}); // awaited by whoever uses it; an unused runner's end is nobody's concern
  return { child, closed };
}

module.exports = { spawnRunner };
