// Reading a declared input of an action by its sandbox path, with an error that says how to
// fix a BUILD.ts that names an input the target does not have.
import { promises as fsp } from "node:fs";
import { join } from "node:path";
import type { ActionContext, MaterializedInput } from "./rule.ts";

/** The input at `path` (relative to the sandbox), or an error naming `attr` and the inputs there are. */
export function findInput(ctx: ActionContext<unknown>, path: string, attr: string): MaterializedInput {
  const input = ctx.inputs.find((i) => i.path === path);
  if (!input) {
    const have = ctx.inputs.map((i) => i.path).sort().join(", ") || "none";
    throw new Error(`${ctx.label}: attribute ${attr} names "${path}", which is not among its inputs (${have}); add the file or the label that makes it to srcs.`);
  }
  return input;
}

export async function readInput(ctx: ActionContext<unknown>, path: string, attr: string): Promise<Uint8Array> {
  findInput(ctx, path, attr);
  return new Uint8Array(await fsp.readFile(join(ctx.dir, path)));
}

/** Write an output with a mode that does not depend on the umask. */
export async function writeOutput(ctx: ActionContext<unknown>, path: string, bytes: Uint8Array | string): Promise<void> {
  const dest = join(ctx.dir, path);
  await fsp.writeFile(dest, bytes);
  await fsp.chmod(dest, 0o644);
}
