// wmb verify: run every action of a target's closure again, bypassing the cache, in
// sandboxes that differ from the recorded build, and compare each output digest.
import { existsSync, rmSync } from "node:fs";
import { ownedDir } from "./sandbox-base.ts";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { build, buildFailure, sandboxChoice, ToolchainProvider, type ActionReport, type BuildEvents, type ToolchainKind } from "./build.ts";
import type { Graph } from "./graph.ts";
import { buildFileCache, loadWorkspace, type Target } from "./build-file.ts";
import { WmbError } from "./errors.ts";
import type { Digest } from "./digest.ts";
import type { SandboxMode, SandboxVariation } from "./sandbox.ts";
import type { Store } from "../store/store.ts";

export const VARIATIONS = ["path", "tz", "locale", "umask", "time", "jobs"] as const;
export type Variation = (typeof VARIATIONS)[number];

export type VerifyStatus = "identical" | "differs" | "consequence" | "pinned";

export interface VerifiedAction {
  label: string;
  rule: string;
  status: VerifyStatus;
  /** Digest of the whole recorded output set, and of the rebuilt one: equal iff every output is. */
  recordedSet?: Digest;
  rebuiltSet?: Digest;
  recorded: Record<string, Digest>;
  rebuilt: Record<string, Digest>;
  durationMs: number;
}

export interface DivergentOutput {
  label: string;
  path: string;
  recorded: Digest;
  rebuilt: Digest;
}

export interface VerifyRound {
  round: number;
  variation: Record<string, string>;
  actions: VerifiedAction[];
  /** The first divergent action in dependency order: the root cause. */
  firstDivergence?: DivergentOutput;
  identityBefore?: string;
  identityAfter?: string;
}

/** A variation that was asked for but could not be applied, and why (with how to fix it). */
export interface UnappliedVariation {
  variation: Variation;
  reason: string;
}

export interface VerifyReport {
  target: string;
  /** Every target verified (a pattern names several). */
  targets: string[];
  rounds: VerifyRound[];
  unapplied: UnappliedVariation[];
  reproducible: boolean;
}

export function parseVariations(spec: string | undefined): Set<Variation> {
  if (!spec || spec === "all") return new Set(VARIATIONS);
  if (spec === "none") return new Set();
  const out = new Set<Variation>();
  for (const v of spec.split(",").map((s) => s.trim()).filter(Boolean)) {
    if (!(VARIATIONS as readonly string[]).includes(v)) {
      throw new WmbError("USAGE", `Unknown variation "${v}"; choose from ${VARIATIONS.join(", ")}.`);
    }
    out.add(v as Variation);
  }
  return out;
}

const FAKETIME_LIBS = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1", "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"];

/** libfaketime, when Debian's faketime is installed (its `faketime` command on PATH). */
function faketimeLibrary(): string | undefined {
  const onPath = (process.env.PATH ?? "").split(delimiter).some((d) => d !== "" && existsSync(join(d, "faketime")));
  return onPath ? FAKETIME_LIBS.find((l) => existsSync(l)) : undefined;
}

/** A sandbox that differs from the default one in every requested dimension. */
function variationFor(vary: Set<Variation>, round: number): { sandbox: SandboxVariation; tz?: string; umask?: number; described: Record<string, string>; scratch?: string } {
  /** The varied round's own directory, removed after the round. */
  let scratch: string | undefined;
  const described: Record<string, string> = {};
  const sandbox: SandboxVariation = { env: {} };
  let tz: string | undefined;
  let umask: number | undefined;
  if (vary.has("path")) {
    // Another directory, and where possible another filesystem (tmpfs lists directories in
    // creation order, ext4 in hash order), with inputs created in reverse order.
    const base = existsSync("/dev/shm") ? "/dev/shm" : tmpdir();
    // Owned, as sandboxes are: what a killed verify leaves is swept (sandbox-base.ts).
    scratch = ownedDir(base, "wmb-run-verify-");
    sandbox.tmpRoot = join(scratch, `round-${round}`, "a", "deeper", "path");
    sandbox.reverseInputs = true;
    // Under bwrap commands see a fixed path instead of tmpRoot: vary its name and depth.
    sandbox.buildDir = `/wmb-verify-${round}/build`;
    described.path = `${sandbox.tmpRoot} (${sandbox.buildDir} in bwrap)`;
  }
  if (vary.has("tz")) {
    tz = round % 2 ? "Pacific/Kiritimati" : "America/St_Johns";
    sandbox.env!.TZ = tz;
    described.tz = tz;
  }
  if (vary.has("locale")) {
    sandbox.env!.LC_ALL = "C.UTF-8";
    sandbox.env!.LANG = "en_US.UTF-8";
    described.locale = "LC_ALL=C.UTF-8 LANG=en_US.UTF-8";
  }
  if (vary.has("umask")) {
    umask = 0o077;
    sandbox.umask = umask;
    described.umask = "077";
  }
  if (vary.has("time")) {
    const lib = faketimeLibrary();
    if (lib) {
      sandbox.env!.LD_PRELOAD = lib;
      sandbox.env!.FAKETIME = `+${400 + round}d`;
      described.time = `faketime +${400 + round} days`;
    } else {
      described.time = "later wall clock only";
    }
  }
  return { sandbox, tz, umask, described, scratch };
}

/** The requested variations this host cannot apply, each with why and how to fix it. */
function unappliedVariations(vary: Set<Variation>): UnappliedVariation[] {
  const out: UnappliedVariation[] = [];
  if (vary.has("time") && !faketimeLibrary()) {
    out.push({
      variation: "time",
      reason: "faketime is not installed, so command actions see only a later wall clock, not a shifted date; install it with `apt-get install faketime`",
    });
  }
  return out;
}

/** Progress across the baseline and every round: one total, announced once (each build
 * announces its own closure, which would make the count run past it). */
function acrossRounds(events: BuildEvents | undefined, builds: number): BuildEvents | undefined {
  if (!events) return undefined;
  let announced = false;
  return {
    ...events,
    planned(total) {
      if (announced) return;
      announced = true;
      events.planned?.(total * builds);
    },
  };
}

export async function verify(opts: {
  workspace: string;
  store: Store;
  /** Labels or target patterns. */
  targets: string[];
  rounds: number;
  vary: Set<Variation>;
  jobs: number;
  toolchain: ToolchainKind;
  sandbox?: SandboxMode;
  events?: BuildEvents;
  signal?: AbortSignal;
}): Promise<VerifyReport> {
  const { store } = opts;
  const loaded = await loadWorkspace(opts.workspace, buildFileCache(store.dir));
  const toolchains = new ToolchainProvider(opts.toolchain, opts.jobs, store);
  // One choice for every round: one probe, at most one warning.
  const sandbox = sandboxChoice(opts.sandbox, loaded.root, opts.events);
  try {
    // The recorded build: what is in the store now (built first if it is not).
    const events = acrossRounds(opts.events, 1 + opts.rounds);
    const baseline = await build({ workspace: opts.workspace, store, targets: opts.targets, jobs: opts.jobs, loaded, toolchainProvider: toolchains, sandbox, materialize: false, events, signal: opts.signal });
    if (!baseline.ok) throw buildFailure(baseline);
    const recorded = new Map(baseline.actions.map((a) => [a.label, a]));
    const rounds: VerifyRound[] = [];
    for (let r = 1; r <= opts.rounds; r++) {
      const v = variationFor(opts.vary, r);
      // Another job count, never fewer: a serial round would only be slower, not more telling.
      const jobs = opts.vary.has("jobs") ? opts.jobs + 1 : opts.jobs;
      if (opts.vary.has("jobs")) v.described.jobs = String(jobs);
      const restore = applyProcessVariation(v.tz, v.umask);
      let round;
      try {
        round = await build({
          workspace: opts.workspace,
          store,
          targets: baseline.targets,
          jobs,
          loaded,
          toolchainProvider: toolchains,
          sandbox,
          materialize: false,
          command: "verify",
          variation: v.sandbox,
          // Network fetches are pinned by their integrity: re-downloading proves nothing.
          noCache: (t) => !t.rule.network,
          events,
          signal: opts.signal,
        });
      } finally {
        restore();
        if (v.scratch) rmSync(v.scratch, { recursive: true, force: true });
      }
      if (!round.ok) throw buildFailure(round);
      rounds.push(compareRound(r, v.described, baseline.graph, recorded, round.actions));
    }
    const target = baseline.targets[0]!;
    const identityBefore = await identityOf(store, baseline.graph.get(target), recorded.get(target)?.outputs);
    for (const round of rounds) {
      round.identityBefore = identityBefore;
      round.identityAfter = await identityOf(store, baseline.graph.get(target), round.actions.find((a) => a.label === target)?.rebuilt);
    }
    return {
      target: baseline.targets.join(" "),
      targets: baseline.targets,
      rounds,
      unapplied: unappliedVariations(opts.vary),
      reproducible: rounds.every((r) => !r.firstDivergence),
    };
  } finally {
    await toolchains.close();
  }
}

function compareRound(
  round: number,
  variation: Record<string, string>,
  graph: Graph,
  recorded: Map<string, ActionReport>,
  rebuiltActions: ActionReport[],
): VerifyRound {
  const diverged = new Set<string>();
  const actions: VerifiedAction[] = [];
  let first: DivergentOutput | undefined;
  for (const a of rebuiltActions) {
    const before = recorded.get(a.label)?.outputs ?? {};
    const after = a.outputs ?? {};
    const differing = Object.keys({ ...before, ...after }).sort().filter((p) => before[p] !== after[p]);
    let status: VerifyStatus;
    if (a.status === "cached") status = "pinned";
    else if (differing.length === 0) status = "identical";
    else if (graph.get(a.label).deps.some((d) => diverged.has(d))) status = "consequence";
    else status = "differs";
    if (differing.length) diverged.add(a.label);
    if (status === "differs" && !first) {
      const p = differing[0]!;
      first = { label: a.label, path: p, recorded: before[p]!, rebuilt: after[p]! };
    }
    const recordedSet = recorded.get(a.label)?.outputsDigest;
    actions.push({ label: a.label, rule: a.rule, status, recordedSet, rebuiltSet: a.outputsDigest, recorded: before, rebuilt: after, durationMs: a.durationMs });
  }
  return { round, variation, actions, firstDivergence: first };
}

/** A sealed machine's identity, when the target's outputs hold a sealed spec. */
async function identityOf(store: Store, target: Target, outputs: Record<string, Digest> | undefined): Promise<string | undefined> {
  if (!outputs) return undefined;
  const { sealedSpecOf } = await import("./machine.ts");
  return (await sealedSpecOf(store, target, outputs))?.spec.seal.digest;
}

function applyProcessVariation(tz: string | undefined, umask: number | undefined): () => void {
  // In-process rules see the process's TZ and umask, so vary those for the round too.
  const oldTz = process.env.TZ;
  const oldUmask = umask === undefined ? undefined : process.umask(umask);
  if (tz) process.env.TZ = tz;
  return () => {
    if (tz) {
      if (oldTz === undefined) delete process.env.TZ;
      else process.env.TZ = oldTz;
    }
    if (oldUmask !== undefined) process.umask(oldUmask);
  };
}
