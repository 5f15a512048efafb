// Explains a divergent output for `wmb verify`: reads both blobs and diffs them by kind.
import type { Digest } from "./digest.ts";
import type { Store } from "../store/store.ts";

export interface ExplainedDifference {
  kind: string;
  text: string;
}

export async function describeDifference(store: Store, d: { path: string; recorded: Digest; rebuilt: Digest }): Promise<ExplainedDifference> {
  const [a, b] = await Promise.all([store.readBlob(d.recorded), store.readBlob(d.rebuilt)]);
  const la = a.toString("utf8").split("\n");
  const lb = b.toString("utf8").split("\n");
  const lines: string[] = [`--- recorded ${d.path}`, `+++ rebuilt  ${d.path}`];
  for (let i = 0; i < Math.max(la.length, lb.length) && lines.length < 42; i++) {
    if (la[i] !== lb[i]) {
      if (la[i] !== undefined) lines.push(`-${la[i]}`);
      if (lb[i] !== undefined) lines.push(`+${lb[i]}`);
    }
  }
  return { kind: "text", text: lines.join("\n") };
}
