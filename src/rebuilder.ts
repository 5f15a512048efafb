// The rebuilder: for one action, "cached or run". It looks the key up in the store's
// constructive traces, and otherwise runs the rule in a sandbox and records what it made.
import { promises as fsp } from "node:fs";
import { join } from "node:path";
import { hashFile, type ActionKey, type Digest } from "./digest.ts";
import { WmbError } from "./errors.ts";
import { encodeKeyInputs, type ActionKeyInputs } from "./keys.ts";
import {
  ActionExecError,
  createSandboxDir,
  execInSandbox,
  placeFile,
  removeSandboxDir,
  tail,
  type SandboxVariation,
} from "./sandbox.ts";
import type { Target } from "./build-file.ts";
import type { ActionResult, OutputMap, Store } from "../store/store.ts";
import type { ActionContext, MaterializedInput, Toolchain } from "../rules/rule.ts";

export interface PlannedInput {
  /** Path in the sandbox. */
  path: string;
  digest: Digest;
  /** A source file's absolute path; absent for a dependency output (served from the store). */
  file?: string;
  /** The label that produced it. */
  from?: string;
  executable?: boolean;
}

export interface PlannedAction {
  target: Target;
  inputs: PlannedInput[];
  keyInputs: ActionKeyInputs;
  key: ActionKey;
}

export interface Executed {
  result: ActionResult;
  /** Earlier, different results for the same key: the action is not deterministic. */
  divergentFrom: Digest[];
}

export interface RebuilderOptions {
  store: Store;
  variation?: SandboxVariation;
  /** Keep sandboxes of failed actions for inspection. */
  keepSandboxes?: boolean;
  toolchain: () => Promise<Toolchain>;
  log: (label: string, line: string) => void;
}

export class Rebuilder {
  constructor(private readonly opts: RebuilderOptions) {}

  /** The recorded result for this key, if every output blob is whole. A corrupt or missing
   * blob drops the result (see Store.checkBlob), so the action reruns. */
  async cached(plan: PlannedAction): Promise<ActionResult | undefined> {
    const { store } = this.opts;
    for (;;) {
      const r = store.lookupResult(plan.key);
      if (!r) return undefined;
      let whole = true;
      for (const o of Object.values(r.outputs)) {
        if ((await store.checkBlob(o.digest)) !== "ok") whole = false;
      }
      if (whole) return r;
      // checkBlob forgot the result(s) naming the bad blob; an older result may still be whole.
    }
  }

  async execute(plan: PlannedAction, signal: AbortSignal): Promise<Executed> {
    const { store, variation } = this.opts;
    const t = plan.target;
    const dir = await createSandboxDir(t.label, variation);
    let ok = false;
    try {
      const materialized: MaterializedInput[] = [];
      const inputs = variation?.reverseInputs ? [...plan.inputs].reverse() : plan.inputs;
      for (const input of inputs) {
        if (input.file) {
          const dest = await placeFile(input.file, dir, input.path);
          // The key was computed from the file as it was; refuse to run on other bytes.
          if ((await hashFile(dest)).digest !== input.digest) {
            throw new WmbError("MISSING_SOURCE", `${input.file} changed while ${t.label} was building; run the build again.`, { subject: t.label });
          }
        } else {
          const dest = join(dir, input.path);
          await fsp.mkdir(join(dest, ".."), { recursive: true });
          await store.materialize(input.digest, dest, input.executable ?? false);
        }
        materialized.push({ path: input.path, digest: input.digest, from: input.from });
      }
      for (const out of plan.target.outputs) await fsp.mkdir(join(dir, out, ".."), { recursive: true });
      const env = { ...plan.keyInputs.env, ...(variation?.env ?? {}) };
      const toolchain = t.rule.usesToolchain ? await this.opts.toolchain() : undefined;
      const ctx: ActionContext<any> = {
        label: t.label,
        attrs: t.attrs,
        dir,
        inputs: materialized,
        outputs: t.outputs,
        env,
        signal,
        toolchain,
        exec: (argv, o) => execInSandbox(argv, dir, env, signal, { ...o, umask: variation?.umask }),
        log: (line) => this.opts.log(t.label, line),
      };
      const started = performance.now();
      try {
        await t.rule.run(ctx);
      } catch (e) {
        if (signal.aborted) throw new WmbError("INTERRUPTED", "Interrupted.");
        throw actionFailure(t, e, dir, this.opts.keepSandboxes);
      }
      const durationMs = performance.now() - started;
      const outputs = await this.collectOutputs(t, dir);
      const recorded = store.recordResult({
        key: plan.key,
        label: t.label,
        rule: `${t.rule.name}@${t.rule.version}`,
        keyInputs: encodeKeyInputs(plan.keyInputs),
        outputs,
        durationMs,
      });
      ok = true;
      return { result: { id: recorded.id, outputsDigest: recorded.outputsDigest, outputs }, divergentFrom: recorded.divergentFrom };
    } finally {
      if (ok || !this.opts.keepSandboxes) await removeSandboxDir(dir);
    }
  }

  private async collectOutputs(t: Target, dir: string): Promise<OutputMap> {
    const outputs: OutputMap = {};
    for (const rel of t.outputs) {
      const p = join(dir, rel);
      const st = await fsp.lstat(p).catch(() => undefined);
      if (!st) {
        throw new WmbError("MISSING_OUTPUT", `${t.label} did not produce its declared output "${rel}"; make the rule write it or remove it from the outputs (${t.declaredAt}).`, { subject: t.label });
      }
      if (!st.isFile()) {
        throw new WmbError("MISSING_OUTPUT", `${t.label}'s output "${rel}" is ${st.isSymbolicLink() ? "a symlink" : "not a regular file"}; outputs must be regular files.`, { subject: t.label });
      }
      const { digest } = await this.opts.store.putFile(p);
      outputs[rel] = { digest, executable: (st.mode & 0o111) !== 0 };
    }
    return outputs;
  }
}

function actionFailure(t: Target, e: unknown, dir: string, kept?: boolean): WmbError {
  if (e instanceof WmbError) return e;
  const where = kept ? ` (sandbox kept at ${dir})` : "";
  if (e instanceof ActionExecError) {
    return new WmbError("ACTION_FAILED", `${t.label} failed: ${e.message}${where}.`, { subject: t.label, detail: e.stderrTail });
  }
  const err = e as Error & { stderr?: string; command?: string };
  const detail = err.stderr ? tail(err.stderr) : undefined;
  return new WmbError("ACTION_FAILED", `${t.label} failed: ${err.message ?? String(e)}${where}.`, { subject: t.label, detail, cause: e });
}
