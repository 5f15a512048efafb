// The digest of a whole output set: one value per action result, what early cutoff, history and
// verify compare. Its own module, so the engine can use it without loading SQLite.
import { hashBytes, type Digest } from "../src/digest.ts";
import type { OutputMap } from "./store.ts";

/** blake3 of JSON [[path, digest, executable 0|1], …] sorted by path. */
export function outputsDigestOf(outputs: OutputMap): Digest {
  const entries = Object.keys(outputs)
    .sort()
    .map((p) => [p, outputs[p]!.digest, outputs[p]!.executable ? 1 : 0]);
  return hashBytes(JSON.stringify(entries));
}
