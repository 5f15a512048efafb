// The WASI interfaces wmb's runners implement: the guest runner under `wmb run`
// (guest-runner.mjs) and the tab's (src/web/page/run-worker.ts) alike.
/** The WASI interfaces (unversioned) guest-runner.mjs and the tab's run-worker.ts implement: a machine is granted those its
 * spec binds to the host, and a binding outside this list is refused before anything starts
 * (run-grant.ts). The runner refuses a granted name it does not implement, so the two cannot
 * drift apart silently. */
export const RUNNER_INTERFACES: readonly string[] = [
  "wasi:cli/environment",
  "wasi:cli/exit",
  "wasi:cli/stderr",
  "wasi:cli/stdin",
  "wasi:cli/stdout",
  "wasi:cli/terminal-input",
  "wasi:cli/terminal-output",
  "wasi:cli/terminal-stderr",
  "wasi:cli/terminal-stdin",
  "wasi:cli/terminal-stdout",
  "wasi:clocks/monotonic-clock",
  "wasi:clocks/wall-clock",
  "wasi:filesystem/preopens",
  "wasi:filesystem/types",
  "wasi:io/error",
  "wasi:io/poll",
  "wasi:io/streams",
  "wasi:random/insecure",
  "wasi:random/insecure-seed",
  "wasi:random/random",
];
