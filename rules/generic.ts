// Generic rules: useful without any toolchain, and what the engine's tests use.
import { promises as fsp, writeFileSync } from "node:fs";
import { join } from "node:path";
import { defineRule, type CommonAttrs } from "./rule.ts";

export interface WriteAttrs extends CommonAttrs {
  /** Output file name. */
  out: string;
  content: string;
  executable?: boolean;
}

/** A file from a string. */
export const write = defineRule<WriteAttrs>({
  name: "write",
  version: 1,
  attrTypes: { out: "string", content: "string", executable: "boolean?" },
  outputs: (a) => [a.out],
  // Synchronous: one small file, where each asynchronous step is a thread-pool round trip. The
  // engine has made the directories of every declared output (as for every rule).
  async run(ctx) {
    writeFileSync(join(ctx.dir, ctx.attrs.out), ctx.attrs.content, { mode: ctx.attrs.executable ? 0o755 : 0o644 });
  },
});

export interface RunAttrs extends CommonAttrs {
  outs: string[];
  /** A shell command (run with /bin/sh -c in the sandbox) ... */
  cmd?: string;
  /** ... or an argv. */
  argv?: string[];
  /** Host environment variables the command may see; their values enter the key. */
  env?: string[];
}

/** A command with declared inputs (srcs), outputs and environment. */
export const run = defineRule<RunAttrs>({
  name: "run",
  version: 1,
  attrTypes: { outs: "string[]", cmd: "string?", argv: "string[]?", env: "string[]?" },
  outputs: (a) => a.outs,
  env: (a) => a.env ?? [],
  async run(ctx) {
    await ctx.exec(ctx.attrs.argv ?? ["/bin/sh", "-c", ctx.attrs.cmd ?? "true"]);
  },
});

export interface CopyAttrs extends CommonAttrs {
  /** Path of the input to copy (a source file or a dependency's output). */
  src: string;
  out: string;
}

export const copy = defineRule<CopyAttrs>({
  name: "copy",
  version: 1,
  attrTypes: { src: "string", out: "string" },
  outputs: (a) => [a.out],
  async run(ctx) {
    const dest = join(ctx.dir, ctx.attrs.out);
    await fsp.copyFile(join(ctx.dir, ctx.attrs.src), dest);
  },
});

export interface GlobAttrs extends CommonAttrs {
  /** Patterns relative to the package directory (`*`, `**`, `?`). Expanded when BUILD.ts is loaded. */
  patterns: string[];
}

/** Source files matched by patterns, passed on as this target's outputs. */
export const glob = defineRule<GlobAttrs>({
  name: "glob",
  version: 1,
  attrTypes: { patterns: "string[]" },
  // The loader expands the patterns into srcs; each source is also an output, at the same path.
  outputs: (a) => a.srcs ?? [],
  async run() {
    // Inputs already sit at their output paths in the sandbox.
  },
});
