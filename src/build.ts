// One build: load BUILD.ts, plan the closure of the requested targets, let the scheduler
// walk it and the rebuilder decide each action, record everything, materialize outputs.
// The layers and the action-key contract: docs/ARCHITECTURE.md.
import { join, sep } from "node:path";
import { hashBytes, type ActionKey, type Digest } from "./digest.ts";
import { WmbError } from "./errors.ts";
import { encodeKeyInputs, inputsForKey, keyOfEncoded, type ActionKeyInputs } from "./keys.ts";
import { expandTargetPatterns } from "./target-pattern.ts";
import { Graph } from "./graph.ts";
import { buildFileCache, loadWorkspace, type LoadedWorkspace, type Target } from "./build-file.ts";
import { Rebuilder, type PlannedAction, type PlannedInput } from "./rebuilder.ts";
import { schedule, Slots } from "./scheduler.ts";
import { SANDBOX_ENV, SandboxChoice, sandboxMode, type SandboxMode, type SandboxUse, type SandboxVariation } from "./sandbox.ts";
import type { OutputMap, Store } from "../store/store.ts";
import type { CacheStats, RemoteCache } from "./remote/action-cache.ts";
import { RemoteOutputs } from "./remote-outputs.ts";
import { ActionLocks } from "../store/action-lock.ts";
import { span, traced, tracing } from "./trace.ts";
import { readWorkspaceConfig } from "./workspace-config.ts";
import { ruleId, type Toolchain } from "../rules/rule.ts";
import { hashStatCached, SourceHasher } from "./source-hash.ts";
import { materializeOutputs, WmbOut } from "./wmb-out.ts";
import { criticalPath, type TimedAction } from "./critical-path.ts";
import { terminalText } from "./terminal-text.ts";
import { writeMemo, type MemoedBuild } from "./noop-memo.ts";

export type ToolchainKind = "hermetic" | "system";

/** remote: a remote cache held the result (its outputs fetched only where needed). */
export type ActionStatus = "cached" | "remote" | "executed" | "failed" | "skipped";

export interface ActionReport {
  label: string;
  rule: string;
  key?: ActionKey;
  status: ActionStatus;
  durationMs: number;
  outputs?: Record<string, Digest>;
  /** One digest for the whole output set (paths, digests, executable bits: see outputsDigestOf). */
  outputsDigest?: Digest;
  /** Earlier different outputs recorded for the same key (non-determinism). */
  divergentFrom?: Digest[];
  /** How the result was made (bwrap, none, in-process); undefined for a result recorded before wmb kept it. */
  sandbox?: SandboxUse;
  error?: WmbError;
}

export interface BuildEvents {
  planned?(total: number): void;
  started?(label: string): void;
  finished?(report: ActionReport): void;
  log?(label: string, line: string): void;
  /** Something the user should fix, said once per build (e.g. no working sandbox). */
  warning?(message: string): void;
}

export interface BuildOptions {
  workspace: string;
  store: Store;
  targets: string[];
  jobs: number;
  keepGoing?: boolean;
  toolchain?: ToolchainKind;
  /** Run every action (or those the predicate picks) even when a result is recorded (verify, --no-cache). */
  noCache?: boolean | ((t: Target) => boolean);
  /** Copy the requested targets' outputs to wmb-out/ (default true). */
  materialize?: boolean;
  variation?: SandboxVariation;
  /** How command actions are confined (default: WMB_SANDBOX, else wmb.json, else auto); verify shares one choice across rounds. */
  sandbox?: SandboxMode | SandboxChoice;
  command?: "build" | "verify";
  events?: BuildEvents;
  signal?: AbortSignal;
  /** Reuse an already loaded workspace (verify runs several rounds). */
  loaded?: LoadedWorkspace;
  /** Provide a toolchain (shared across rounds); otherwise one is created on first use. */
  toolchainProvider?: ToolchainProvider;
  /** Look results up in (and, when it uploads, write them to) a remote cache. */
  remote?: RemoteCache;
  /** Keep a no-op memo for the next identical build (src/noop-memo.ts), named by this. */
  memo?: MemoedBuild;
}

export interface BuildSummary {
  buildId: number;
  targets: string[];
  ok: boolean;
  interrupted: boolean;
  actions: ActionReport[];
  counts: Record<ActionStatus, number>;
  durationMs: number;
  /** Files written under wmb-out/, workspace-relative. */
  materialized: string[];
  graph: Graph;
  /** Whether any action ran the toolchain (a build served from caches never loads it). */
  toolchainUsed: boolean;
  remote?: CacheStats;
}

/** Creates the toolchain once, on first use, and computes its identity. */
export class ToolchainProvider {
  private instance?: Promise<Toolchain>;
  private identity?: Promise<Digest>;

  constructor(
    readonly kind: ToolchainKind,
    private readonly jobs: number,
    private readonly store: Store,
  ) {}

  /** Set once an action asks for the toolchain to run it (keys only need its identity). */
  used = false;

  get(): Promise<Toolchain> {
    this.instance ??= import("../rules/toolchain.ts").then((m) => m.createToolchain(this.kind, { jobs: this.jobs }));
    return this.instance;
  }

  forRunning(): Promise<Toolchain> {
    this.used = true;
    return this.get();
  }

  /** Digest over the digests of the files that define the toolchain (stat-cached). */
  id(): Promise<Digest> {
    this.identity ??= (async () => {
      const tc = await this.get();
      const files = (await tc.identityFiles()).slice().sort();
      const parts: string[] = [this.kind];
      for (const f of files) parts.push(`${f.split(sep).slice(-3).join("/")}=${await hashStatCached(this.store, f)}`);
      return hashBytes(parts.join("\n"));
    })();
    return this.identity;
  }

  async close(): Promise<void> {
    if (this.instance) await (await this.instance).close();
  }
}

/** From this many actions (or requested targets) on, a build reads the index in bulk up front
 * (results, wmb-out's stat cache): below it, a query each costs less than one over them all. */
const PREFETCH_FROM = 200;

export async function build(opts: BuildOptions): Promise<BuildSummary> {
  const started = performance.now();
  const { store } = opts;
  const loaded = opts.loaded ?? (await traced("load BUILD.ts", "build", () => loadWorkspace(opts.workspace, buildFileCache(store.dir))));
  const graph = new Graph(loaded.targets);
  const requested = expandTargetPatterns(opts.targets, loaded.targets);
  const closure = graph.closure(requested);
  const toolchains = opts.toolchainProvider ?? new ToolchainProvider(opts.toolchain ?? "hermetic", opts.jobs, store);
  const sandbox = opts.sandbox instanceof SandboxChoice ? opts.sandbox : sandboxChoice(opts.sandbox, loaded.root, opts.events);
  // A sandbox the user insists on is checked before anything runs; auto waits for a command.
  if (sandbox.mode === "bwrap") await sandbox.resolve();
  const ownsToolchain = !opts.toolchainProvider;
  const abort = new AbortController();
  const onAbort = () => abort.abort();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  if (opts.signal?.aborted) abort.abort();

  // Every source of the closure exists and stays in the workspace, or nothing runs or is recorded.
  const sources = new SourceHasher(store, loaded.root);
  for (const t of closure) for (const s of t.sources) sources.check(s.file, t);
  // Held until the process ends: gc never sweeps what this build looks up, serves or writes.
  await store.lease((m) => warn(opts.events, m), opts.signal);
  const generation = opts.memo && store.generation();

  const buildId = store.history.begin({
    command: opts.command ?? "build",
    targets: requested,
    workspace: loaded.root,
    toolchain: closure.some((t) => t.rule.usesToolchain) ? toolchains.kind : undefined,
  });
  const gathered = store.gatherWrites();
  const rebuilder = new Rebuilder({
    store,
    producedBy: opts.command === "verify" ? "verify" : "build",
    variation: opts.variation,
    sandbox,
    toolchain: () => toolchains.forRunning(),
    log: (label, line) => opts.events?.log?.(label, line),
    slots: new Slots(opts.jobs),
  });
  const results = new Map<string, OutputMap>();
  const reports = new Map<string, ActionReport>();
  opts.events?.planned?.(closure.length);
  // A large build reads its closure's recorded results in one query, not one per action.
  if (closure.length >= PREFETCH_FROM && opts.noCache !== true) store.prefetchResults(closure.map((t) => t.label));
  const locks = new ActionLocks(store.dir);
  const wmbOut = new WmbOut(store, loaded.root);
  const requestedSet = new Set(requested);
  const delivered = new Set<string>();
  /** Deliveries to wmb-out/ started once their results were committed. */
  const deliveries: Promise<void>[] = [];
  const remote = opts.remote && new RemoteOutputs(opts.remote, store, rebuilder, abort.signal, (m) => warn(opts.events, m));

  const lanes = new Set<number>();
  /** Each action's place on the timeline, for the critical path the history keeps. */
  const timed: TimedAction[] = [];
  const runOne = async (label: string) => {
    const t = graph.get(label);
    const t0 = performance.now();
    // A lane per concurrently running action, so parallel actions show side by side (in the
    // trace and in the timeline the history keeps).
    let lane = 0;
    while (lanes.has(lane)) lane++;
    lanes.add(lane);
    const startMs = t0 - started;
    let plan: PlannedAction | undefined;
    try {
      plan = await planAction(t, sources, results, toolchains);
      let status: ActionStatus = "cached";
      const bypass = typeof opts.noCache === "function" ? opts.noCache(t) : opts.noCache === true;
      let result = bypass ? undefined : await rebuilder.cached(plan);
      if (!result && !bypass && remote) {
        result = await remote.lookup(plan);
        if (result) status = "remote";
      }
      let divergentFrom: Digest[] | undefined;
      // Another wmb running the same action on this store: wait for its result rather than run it twice.
      const lock = result || bypass ? undefined : await locks.acquire(plan.key, () => rebuilder.cached(plan!), abort.signal, { label, onWait: (m) => warn(opts.events, m) });
      if (lock && !lock.held) result = lock.result;
      if (!result) {
        try {
          opts.events?.started?.(label);
          status = "executed";
          // Outputs of remote hits this action reads are fetched now (and only now).
          if (remote) await remote.fetchInputs(plan);
          const executed = await rebuilder.execute(plan, abort.signal);
          result = executed.result;
          if (executed.divergentFrom.length) divergentFrom = executed.divergentFrom;
        } finally {
          // Held until its result is committed: a build waiting for the lock then finds it.
          if (lock?.held) store.afterCommit(() => void lock.release());
        }
      }
      if (status !== "remote" && opts.remote?.uploading) {
        opts.remote.upload({ key: plan.key, label, rule: plan.keyInputs.rule, keyInputs: plan.encodedKeyInputs, sandbox: result.sandbox, outputs: result.outputs });
      }
      results.set(label, result.outputs);
      // A requested target built now goes to wmb-out/ as soon as its result is committed (as
      // Bazel's do), overlapping the actions still running: wmb-out/ never holds what no
      // committed result names. What was served from the store or a remote is delivered at the end.
      if (status === "executed" && opts.materialize !== false && requestedSet.has(label)) {
        const outputs = result.outputs;
        delivered.add(label);
        store.afterCommit(() => {
          const delivery = wmbOut.deliver(t, outputs, false);
          delivery.catch(() => {}); // handled: awaited with the others after the last action
          deliveries.push(delivery);
        });
      }
      const durationMs = performance.now() - t0;
      timed.push({ label, startMs, durationMs, deps: t.deps });
      store.history.recordAction({ buildId, label, key: plan.key, resultId: status === "remote" ? undefined : result.id, outputs: result.outputs, status, durationMs, startMs, lane });
      const report: ActionReport = {
        label,
        rule: plan.keyInputs.rule,
        key: plan.key,
        status,
        durationMs,
        outputs: digestsOf(result.outputs),
        outputsDigest: result.outputsDigest,
        divergentFrom,
        sandbox: result.sandbox,
      };
      reports.set(label, report);
      opts.events?.finished?.(report);
      if (tracing()) span(label, status, t0, durationMs, lane + 1, { rule: report.rule });
    } catch (e) {
      const error = asWmbError(e, t);
      const durationMs = performance.now() - t0;
      timed.push({ label, startMs, durationMs, deps: t.deps });
      if (plan && error.code !== "INTERRUPTED") {
        store.history.recordAction({ buildId, label, key: plan.key, status: "failed", durationMs, startMs, lane, error: error.message });
      }
      const report: ActionReport = { label, rule: ruleId(t.rule), key: plan?.key, status: "failed", durationMs, error };
      reports.set(label, report);
      opts.events?.finished?.(report);
      throw error;
    } finally {
      lanes.delete(lane);
    }
  };

  let sched;
  try {
    sched = await schedule(
      closure.map((t) => ({ id: t.label, deps: t.deps })),
      runOne,
      // Twice -j actions in flight, -j of them running their rule (Slots): the others are being
      // looked up, prepared or recorded meanwhile.
      { jobs: opts.jobs * 2, keepGoing: opts.keepGoing ?? false, signal: abort.signal },
    );
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    if (ownsToolchain) await toolchains.close();
  }
  for (const label of sched.skipped) {
    const t = graph.get(label);
    reports.set(label, { label, rule: ruleId(t.rule), status: "skipped", durationMs: 0 });
  }
  let interrupted = abort.signal.aborted;
  let ok = sched.failed.size === 0 && !interrupted;
  let materialized: string[] = [];
  try {
    store.commit();
    await Promise.all(deliveries);
    // The requested targets' outputs are what a build delivers (also those that succeeded when
    // others failed, -k or not): fetched when they came from the remote.
    const built = requested.filter((l) => results.has(l));
    if (!interrupted && remote) for (const l of built) await remote.fetchOutputs(l);
    if (!interrupted && opts.materialize !== false) {
      const targets = built.map((l) => graph.get(l));
      if (targets.length - delivered.size >= PREFETCH_FROM) store.prefetchStatCache(join(loaded.root, "wmb-out") + sep);
      materialized = await traced("copy outputs to wmb-out/", "build", () => materializeOutputs(wmbOut, targets, results, delivered));
    }
  } catch (e) {
    const error = asWmbError(e, graph.get(requested[0]!));
    const label = error.subject && reports.has(error.subject) ? error.subject : requested[0]!;
    reports.set(label, { ...reports.get(label)!, status: "failed", error });
    ok = false;
    interrupted = abort.signal.aborted;
  } finally {
    await opts.remote?.finish();
    gathered.stop();
  }
  const actions = closure.map((t) => reports.get(t.label)!).filter(Boolean);
  const counts: Record<ActionStatus, number> = { cached: 0, remote: 0, executed: 0, failed: 0, skipped: 0 };
  for (const a of actions) counts[a.status]++;
  store.history.finish(buildId, interrupted ? "interrupted" : ok ? "ok" : "failed", { counts, criticalPath: criticalPath(timed) });
  // Nothing ran and nothing changed in the store meanwhile: the next identical build may be this one again.
  if (opts.memo && ok && counts.cached === closure.length && generation === store.generation() && memoable(opts, loaded, closure, requested, graph)) {
    writeMemo(opts.memo, loaded.buildFileText, { generation, buildId, requested, closure, results, reports, sources: sources.checkedSources(), sourcesLookedAt: sources.lookedAt, materialized });
  }
  return {
    buildId,
    targets: requested,
    ok,
    interrupted,
    actions,
    counts,
    durationMs: performance.now() - started,
    materialized,
    graph,
    toolchainUsed: toolchains.used,
    remote: opts.remote?.stats,
  };
}

/** Whether a memo can stand for this build: BUILD.ts reads nothing but itself, no remote, no
 * rerun, no toolchain (its files are not among what a memo checks), no machine to register. */
function memoable(opts: BuildOptions, loaded: LoadedWorkspace, closure: Target[], requested: string[], graph: Graph): boolean {
  return loaded.selfContained && !opts.remote && !opts.noCache && !opts.variation && opts.materialize !== false && opts.command !== "verify" &&
    !closure.some((t) => t.rule.usesToolchain) && !requested.some((l) => graph.get(l).rule.machineOutput);
}

/** The sandbox choice for a build of the workspace at `root` (see sandboxMode), warning through `events`. */
export function sandboxChoice(flag: SandboxMode | undefined, root: string, events: BuildEvents | undefined): SandboxChoice {
  return new SandboxChoice(sandboxMode(flag, readWorkspaceConfig(root).sandbox), (m) => warn(events, m));
}

/** A warning for the user, through the build's events when it has a reporter. */
export function warn(events: BuildEvents | undefined, message: string): void {
  if (events?.warning) events.warning(message);
  else process.stderr.write(`warning: ${terminalText(message)}\n`);
}

/** Compute an action's inputs and key. Dependencies are done, so their outputs are known. */
export async function planAction(
  t: Target,
  sources: SourceHasher,
  results: Map<string, OutputMap>,
  toolchains: ToolchainProvider,
): Promise<PlannedAction> {
  const inputs: PlannedInput[] = [];
  const byPath = new Map<string, string>();
  const add = (input: PlannedInput, origin: string) => {
    const prev = byPath.get(input.path);
    if (prev !== undefined) {
      throw new WmbError("DUPLICATE_OUTPUT", `${t.declaredAt}: ${t.label} gets two inputs at "${input.path}" (from ${prev} and ${origin}); rename one of them.`, { subject: t.label });
    }
    byPath.set(input.path, origin);
    inputs.push(input);
  };
  for (const s of t.sources) {
    const { digest, statSig } = await sources.hash(s.file, t);
    add({ path: s.path, digest, file: s.file, statSig }, s.file);
  }
  for (const d of t.deps) {
    const outs = results.get(d);
    if (!outs) throw new Error(`internal: ${d} has no result while planning ${t.label}`);
    // By path, so the order (which enters the key) is the same whether the result was just made
    // (outputs in declared order) or read from the store (by path).
    const entries = Object.entries(outs);
    if (entries.length > 1) entries.sort(([a], [b]) => (a < b ? -1 : 1));
    for (const [path, o] of entries) add({ path, digest: o.digest, from: d, executable: o.executable }, d);
  }
  // Shared by every action whose rule reads no variable of its own (never changed: see keys.ts).
  let env = SANDBOX_ENV as Record<string, string>;
  for (const name of t.rule.env?.(t.attrs) ?? []) {
    const v = process.env[name];
    if (v === undefined) continue;
    if (env === SANDBOX_ENV) env = { ...SANDBOX_ENV };
    env[name] = v;
  }
  const { name: _name, srcs: _srcs, ...attrs } = t.attrs;
  const keyInputs: ActionKeyInputs = {
    format: 2,
    rule: ruleId(t.rule),
    attrs,
    outputs: t.outputs,
    ...inputsForKey(inputs),
    toolchain: t.rule.usesToolchain ? await toolchains.id() : null,
    env,
  };
  const encodedKeyInputs = encodeKeyInputs(keyInputs);
  return { target: t, inputs, keyInputs, encodedKeyInputs, key: keyOfEncoded(encodedKeyInputs) };
}

function digestsOf(outputs: OutputMap): Record<string, Digest> {
  return Object.fromEntries(Object.entries(outputs).map(([p, o]) => [p, o.digest]));
}

/** The error a failed build stands for: its first failed action's, or a general one. */
export function buildFailure(summary: BuildSummary): WmbError {
  const failed = summary.actions.find((a) => a.status === "failed");
  const target = summary.targets.join(" ");
  return failed?.error ?? new WmbError(summary.interrupted ? "INTERRUPTED" : "ACTION_FAILED", `Building ${target} failed.`, { subject: target });
}

function asWmbError(e: unknown, t: Target): WmbError {
  if (e instanceof WmbError) return e;
  return new WmbError("ACTION_FAILED", `${t.label} failed: ${(e as Error)?.message ?? String(e)}.`, { subject: t.label, cause: e });
}
