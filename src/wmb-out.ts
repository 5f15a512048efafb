// wmb-out/: the requested targets' outputs, copied out of the store (never linked: the store's
// copy must stay untouched). A file already holding the right bytes is left alone (stat-cached,
// so a no-op build copies nothing); a target built now is delivered as soon as it is (#16).
import { mkdirSync, renameSync, statSync } from "node:fs";
import { dirname, join, sep } from "node:path";
import type { Target } from "./build-file.ts";
import { digestOfStat } from "./source-hash.ts";
import { uniqueSuffix } from "./unique-name.ts";
import type { OutputMap, Store } from "../store/store.ts";

/** The requested targets' outputs under wmb-out/ (their paths, relative to the workspace): each
 * copied unless it already holds the right bytes, or its target is in `delivered`. */
export async function materializeOutputs(out: WmbOut, targets: Target[], results: Map<string, OutputMap>, delivered: Set<string>): Promise<string[]> {
  const written: string[] = [];
  for (const t of targets) {
    const outputs = results.get(t.label) ?? {};
    for (const path of Object.keys(outputs)) written.push(out.rel(t, path));
    if (!delivered.has(t.label)) await out.deliver(t, outputs, true);
  }
  return written;
}

/** wmb-out/ of a workspace. Synchronous steps: microseconds each, where an asynchronous one is a
 * thread-pool round trip. */
export class WmbOut {
  private readonly base: string;
  private readonly made = new Set<string>();

  constructor(
    private readonly store: Store,
    root: string,
  ) {
    this.base = root.endsWith(sep) ? root : root + sep;
  }

  /** Outputs are relative paths inside their package (checked when declared). */
  rel(t: Target, path: string): string {
    return join("wmb-out", t.pkg, path);
  }

  /** Copy `t`'s outputs in; with `check`, one already holding the right bytes is left alone. */
  async deliver(t: Target, outputs: OutputMap, check: boolean): Promise<void> {
    for (const [path, o] of Object.entries(outputs)) {
      const dest = this.base + this.rel(t, path);
      if (check) {
        const st = statSync(dest, { bigint: true, throwIfNoEntry: false });
        // The right bytes with the wrong mode are delivered again: the mode is part of the output.
        if (st && ((st.mode & 0o111n) !== 0n) === o.executable && (await digestOfStat(this.store, dest, st)) === o.digest) continue;
      }
      const parent = dirname(dest);
      if (!this.made.has(parent)) {
        mkdirSync(parent, { recursive: true });
        this.made.add(parent);
      }
      // Copy then rename, so a concurrent build or reader never sees half a file.
      const tmp = `${dest}.${uniqueSuffix()}.tmp`;
      await this.store.materialize(o.digest, tmp, o.executable);
      renameSync(tmp, dest);
    }
  }
}
