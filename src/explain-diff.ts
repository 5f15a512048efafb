// Explains a divergent output for `wmb verify`: reads both blobs and diffs them by kind
// (tar entries, wasm sections, JSON paths, text lines, bytes).
import { diffArtifacts, type DiffReport } from "./formats/diff.ts";
import type { Digest } from "./digest.ts";
import type { Store } from "../store/store.ts";

export type ExplainedDifference = DiffReport;

export async function describeDifference(store: Store, d: { path: string; recorded: Digest; rebuilt: Digest }): Promise<ExplainedDifference> {
  const [a, b] = await Promise.all([store.readBlob(d.recorded), store.readBlob(d.rebuilt)]);
  return diffArtifacts(a, b, d.path);
}
