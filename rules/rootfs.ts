// rootfs: a machine's root file system as a deterministic tar (src/formats/det-tar.ts).
//
// Every entry gets the same mtime: SOURCE_DATE_EPOCH from the action's environment. The engine
// pins it (0 by default) and it enters the action key, so the tar's bytes are a function of the
// key alone; without it (a rule run by hand) the epoch is 0. Modes are normalized: directories
// 0755, files 0644, or 0755 when the input file is executable by its owner (the owner bit
// survives any umask).
import { promises as fsp } from "node:fs";
import { join } from "node:path";
import { writeDeterministicTar, type DeterministicTarEntry } from "../src/formats/det-tar.ts";
import { findInput, writeOutput } from "./input-file.ts";
import { defineRule, type ActionContext, type CommonAttrs } from "./rule.ts";

export interface RootfsAttrs extends CommonAttrs {
  /** Path in the rootfs ("/.sqliterc") -> path of an input in the sandbox ("rootfs/.sqliterc"). */
  files: Record<string, string>;
  /** Directories to create even when empty (mount points such as "/db"). */
  dirs?: string[];
  /** Output file name; default "<name>.tar". */
  out?: string;
}

export const rootfs = defineRule<RootfsAttrs>({
  name: "rootfs",
  version: 1,
  attrTypes: { files: "object", dirs: "string[]?", out: "string?" },
  outputs: (a) => [rootfsOutput(a)],
  async run(ctx) {
    const entries: DeterministicTarEntry[] = [];
    for (const [tarPath, input] of Object.entries(ctx.attrs.files)) {
      if (typeof input !== "string") throw new Error(`${ctx.label}: files["${tarPath}"] must be the path of an input, got ${JSON.stringify(input)}.`);
      findInput(ctx, input, `files["${tarPath}"]`);
      const file = join(ctx.dir, input);
      const [data, st] = await Promise.all([fsp.readFile(file), fsp.stat(file)]);
      entries.push({ path: tarPath, type: "file", data, mode: st.mode & 0o100 ? 0o755 : 0o644 });
    }
    for (const dir of ctx.attrs.dirs ?? []) entries.push({ path: dir, type: "dir" });
    let tar: Uint8Array;
    try {
      tar = writeDeterministicTar(entries, { mtime: sourceDateEpoch(ctx) });
    } catch (e) {
      throw new Error(`${ctx.label}: ${(e as Error).message}`);
    }
    await writeOutput(ctx, rootfsOutput(ctx.attrs), tar);
  },
});

export function rootfsOutput(a: RootfsAttrs): string {
  return a.out ?? `${a.name}.tar`;
}

/** The fixed epoch every entry carries: SOURCE_DATE_EPOCH, or 0 when the environment has none. */
export function sourceDateEpoch(ctx: ActionContext<unknown>): number {
  const raw = ctx.env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === "") return 0;
  if (!/^\d+$/.test(raw)) throw new Error(`${ctx.label}: SOURCE_DATE_EPOCH must be a whole number of seconds, got ${JSON.stringify(raw)}.`);
  return Number(raw);
}
