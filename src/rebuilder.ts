// The rebuilder: for one action, "cached or run". It looks the key up in the store's
// constructive traces, and otherwise runs the rule in a sandbox and records what it made.
import { lstatSync } from "node:fs";
import { join } from "node:path";
import type { ActionKey, Digest } from "./digest.ts";
import { WmbError } from "./errors.ts";
import type { ActionKeyInputs } from "./keys.ts";
import {
  createSandboxDir,
  execInSandbox,
  placeFile,
  removeSandboxDir,
  runsHostCommands,
  sandboxPath,
  type ActionCommands,
  type SandboxChoice,
  type SandboxUse,
  type SandboxVariation,
} from "./sandbox.ts";
import { probeBwrap, SANDBOX_BUILD_DIR } from "./sandbox-bwrap.ts";
import type { Slots } from "./scheduler.ts";
import { sourceStatSignature } from "./source-hash.ts";
import type { Target } from "./build-file.ts";
import type { ActionResult, OutputMap, ProducedBy, Store } from "../store/store.ts";
import { statSignature } from "../store/cas.ts";
import { CommandError, type ActionContext, type ExecOptions, type MaterializedInput, type Toolchain } from "../rules/rule.ts";

export interface PlannedInput {
  /** Path in the sandbox. */
  path: string;
  digest: Digest;
  /** A source file's absolute path; absent for a dependency output (served from the store). */
  file?: string;
  /** The source file's stat signature when it was hashed (see source-hash.ts). */
  statSig?: string;
  /** The label that produced it. */
  from?: string;
  executable?: boolean;
}

export interface PlannedAction {
  target: Target;
  inputs: PlannedInput[];
  keyInputs: ActionKeyInputs;
  /** keyInputs in canonical JSON, encoded once: hashed to `key`, stored with results for `why`. */
  encodedKeyInputs: string;
  key: ActionKey;
}

export interface Executed {
  result: ActionResult;
  /** Earlier, different results for the same key: the action is not deterministic. */
  divergentFrom: Digest[];
}

export interface RebuilderOptions {
  store: Store;
  /** "verify": results are kept as evidence and never served (see Store.recordResult). */
  producedBy?: ProducedBy;
  variation?: SandboxVariation;
  /** How host commands run (bwrap or not), decided once per build. */
  sandbox: SandboxChoice;
  toolchain: () => Promise<Toolchain>;
  log: (label: string, line: string) => void;
  /** Bounds how many rules run at once (-j); unbounded without. */
  slots?: Slots;
}

export class Rebuilder {
  constructor(private readonly opts: RebuilderOptions) {}

  /** The recorded result for this key, if every output blob is whole (see Store.wholeResult)
   * and this build takes how it was made. */
  cached(plan: PlannedAction): Promise<ActionResult | undefined> {
    return this.opts.store.wholeResult(plan.key, (made) => this.takes(made));
  }

  /** A stricter sandbox never takes a looser result: a build whose commands run under bwrap is
   * not served one made unsandboxed (its commands could read the host). Only meeting such a
   * result probes bwrap, so a no-op build costs nothing more; `auto` asks the probe that its
   * resolve() uses, so that no build warns of unsandboxed commands it never runs. */
  takes(made: SandboxUse | undefined): boolean | Promise<boolean> {
    const { mode } = this.opts.sandbox;
    if (made !== "none" || mode === "none") return true;
    return mode === "bwrap" ? false : probeBwrap().then((probe) => !probe.ok);
  }

  async execute(plan: PlannedAction, signal: AbortSignal): Promise<Executed> {
    const { store, variation } = this.opts;
    const t = plan.target;
    const dir = await createSandboxDir(t.label, variation);
    try {
      const materialized: MaterializedInput[] = [];
      const inputs = variation?.reverseInputs ? [...plan.inputs].reverse() : plan.inputs;
      for (const input of inputs) {
        if (input.file) {
          await placeFile(input.file, dir, input.path);
          // The key was computed from the file as it was hashed; refuse to run on other bytes.
          if (sourceStatSignature(input.file) !== input.statSig) {
            throw new WmbError("MISSING_SOURCE", `${input.file} changed while ${t.label} was building; run the build again.`, { subject: t.label });
          }
        } else {
          await store.materialize(input.digest, sandboxPath(dir, input.path), input.executable ?? false);
        }
        materialized.push({ path: input.path, digest: input.digest, from: input.from });
      }
      for (const out of plan.target.outputs) sandboxPath(dir, out);
      const env = { ...plan.keyInputs.env, ...(variation?.env ?? {}) };
      const commands = this.actionCommands(dir, env, signal);
      const shared = t.rule.usesToolchain ? await this.opts.toolchain() : undefined;
      const toolchain = shared && runsHostCommands(shared) ? shared.inSandbox(commands) : shared;
      const ctx: ActionContext<any> = {
        label: t.label,
        attrs: t.attrs,
        dir,
        inputs: materialized,
        outputs: t.outputs,
        env,
        signal,
        toolchain,
        exec: (argv, o) => commands.exec(argv, o),
        log: (line) => this.opts.log(t.label, line),
      };
      const started = performance.now();
      try {
        await (this.opts.slots ? this.opts.slots.hold(() => t.rule.run(ctx)) : t.rule.run(ctx));
      } catch (e) {
        if (signal.aborted) throw new WmbError("INTERRUPTED", "Interrupted.");
        throw actionFailure(t, e);
      }
      const durationMs = performance.now() - started;
      const outputs = await this.collectOutputs(t, dir);
      const recorded = store.recordResult({
        key: plan.key,
        label: t.label,
        rule: plan.keyInputs.rule,
        keyInputs: plan.encodedKeyInputs,
        outputs,
        durationMs,
        producedBy: this.opts.producedBy,
        sandbox: commands.used,
      });
      return { result: { id: recorded.id, outputsDigest: recorded.outputsDigest, outputs, sandbox: commands.used }, divergentFrom: recorded.divergentFrom };
    } finally {
      removeSandboxDir(dir, [...plan.inputs.map((i) => i.path), ...t.outputs]);
    }
  }

  /** The action's host commands, all run the way the build's sandbox choice says; `used`
   * records how (in-process until one runs). */
  private actionCommands(dir: string, env: Record<string, string>, signal: AbortSignal): ActionCommands & { used: SandboxUse } {
    const { sandbox, variation } = this.opts;
    const buildDir = variation?.buildDir ?? SANDBOX_BUILD_DIR;
    const commands = {
      hostDir: dir,
      used: "in-process" as SandboxUse,
      async visibleDir() {
        return (await sandbox.resolve()).kind === "bwrap" ? buildDir : dir;
      },
      async exec(argv: string[], o?: ExecOptions) {
        const runner = await sandbox.resolve();
        // One unsandboxed command makes the whole result unsandboxed.
        if (commands.used !== "none") commands.used = runner.kind;
        return execInSandbox(argv, dir, env, signal, { ...o, umask: variation?.umask, runner, buildDir });
      },
    };
    return commands;
  }

  private async collectOutputs(t: Target, dir: string): Promise<OutputMap> {
    const outputs: OutputMap = {};
    for (const rel of t.outputs) {
      const p = join(dir, rel);
      const st = lstatSync(p, { throwIfNoEntry: false });
      if (!st) {
        throw new WmbError("MISSING_OUTPUT", `${t.label} did not produce its declared output "${rel}"; make the rule write it or remove it from the outputs (${t.declaredAt}).`, { subject: t.label });
      }
      if (!st.isFile()) {
        throw new WmbError("MISSING_OUTPUT", `${t.label}'s output "${rel}" is ${st.isSymbolicLink() ? "a symlink" : "not a regular file"}; outputs must be regular files.`, { subject: t.label });
      }
      // Copied, not moved: a process the command left running (one that escaped its session)
      // could hold the file open, and would go on writing a renamed blob. The copy holds the
      // output's bytes only if nothing wrote it meanwhile: any write changes its ctime.
      const { digest } = await this.opts.store.putFile(p);
      if (statSignature(lstatSync(p)) !== statSignature(st)) {
        throw new WmbError("ACTION_FAILED", `${t.label}'s output "${rel}" changed while it was being stored: a process the command left running is still writing it; make the command wait for its children.`, { subject: t.label });
      }
      outputs[rel] = { digest, executable: (st.mode & 0o111) !== 0 };
    }
    return outputs;
  }
}

function actionFailure(t: Target, e: unknown): WmbError {
  if (e instanceof WmbError) return e;
  if (e instanceof CommandError) {
    return new WmbError("ACTION_FAILED", `${t.label} failed: ${e.message}.`, { subject: t.label, detail: e.stderr });
  }
  return new WmbError("ACTION_FAILED", `${t.label} failed: ${(e as Error)?.message ?? String(e)}.`, { subject: t.label, cause: e });
}
