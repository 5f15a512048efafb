// Run a rule outside the engine: a temp sandbox holding the given inputs, the same
// scrubbed environment the engine uses, and a context built by hand.
import { mkdtempSync, promises as fsp } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { ActionContext, CommonAttrs, MaterializedInput, RuleDef, Toolchain } from "../../rules/rule.ts";
import { hashBytes } from "../../src/digest.ts";
import { execInSandbox, SANDBOX_ENV } from "../../src/sandbox.ts";

/** The engine's own sandbox environment. */
export const TEST_ENV = SANDBOX_ENV;

export interface TestAction<A> {
  ctx: ActionContext<A>;
  dir: string;
  logs: string[];
  /** Absolute paths of the declared outputs. */
  outputPaths: string[];
}

/** A sandbox in a fresh temp dir with `inputs` (path -> bytes or text) placed read-only. */
export async function makeActionContext<A extends CommonAttrs>(
  rule: RuleDef<A>,
  attrs: A,
  opts: { inputs?: Record<string, string | Uint8Array>; toolchain?: Toolchain; signal?: AbortSignal; dir?: string } = {},
): Promise<TestAction<A>> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), `wmb-rule-${rule.name}-`));
  const inputs: MaterializedInput[] = [];
  for (const [path, content] of Object.entries(opts.inputs ?? {})) {
    const dest = join(dir, path);
    await fsp.mkdir(dirname(dest), { recursive: true });
    await fsp.writeFile(dest, content, { mode: 0o444 });
    inputs.push({ path, digest: hashBytes(content) });
  }
  const outputs = rule.outputs(attrs);
  for (const o of outputs) await fsp.mkdir(dirname(join(dir, o)), { recursive: true });
  const logs: string[] = [];
  const signal = opts.signal ?? new AbortController().signal;
  const ctx: ActionContext<A> = {
    label: `//test:${attrs.name}`,
    attrs,
    dir,
    inputs,
    outputs,
    env: TEST_ENV,
    signal,
    toolchain: rule.usesToolchain ? opts.toolchain : undefined,
    exec: (argv, o) => execInSandbox(argv, dir, TEST_ENV, signal, o),
    log: (line) => logs.push(line),
  };
  return { ctx, dir, logs, outputPaths: outputs.map((o) => join(dir, o)) };
}

/** Build the context and run the rule; returns the sandbox. */
export async function runRule<A extends CommonAttrs>(
  rule: RuleDef<A>,
  attrs: A,
  opts: Parameters<typeof makeActionContext<A>>[2] = {},
): Promise<TestAction<A>> {
  const action = await makeActionContext(rule, attrs, opts);
  await rule.run(action.ctx);
  return action;
}
