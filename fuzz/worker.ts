// One target fuzzed in a worker thread, so the runner can end an input that hangs (a busy loop
// never yields to a timer) and survive one that exhausts memory: before each run the input is
// copied into shared memory with a counter the runner watches.
import { parentPort, workerData } from "node:worker_threads";
import { fuzz } from "./fuzz-loop.ts";
import { targetNamed } from "./targets.ts";

export interface WorkerData {
  target: string;
  corpus: Uint8Array[];
  seed: number;
  timeMs: number;
  /** [0]: inputs started; [1]: the current input's length; then its bytes (up to the buffer's end). */
  shared: SharedArrayBuffer;
}

const d = workerData as WorkerData;
const header = new Int32Array(d.shared, 0, 2);
const bytes = new Uint8Array(d.shared, 8);
const target = targetNamed(d.target);
await target.setUp?.();
const result = await fuzz(target, {
  corpus: d.corpus,
  seed: d.seed,
  timeMs: d.timeMs,
  onInput(input) {
    const n = Math.min(input.length, bytes.length);
    bytes.set(input.subarray(0, n));
    Atomics.store(header, 1, n);
    Atomics.add(header, 0, 1);
  },
});
let tearDownError: string | undefined;
try {
  await target.tearDown?.();
} catch (e) {
  tearDownError = String(e);
}
parentPort!.postMessage({ runs: result.runs, findings: result.findings, tearDownError });
