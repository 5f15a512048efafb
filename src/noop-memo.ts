// The no-op memo: what a build that changed nothing found, kept so that the next identical build
// can prove nothing changed without loading BUILD.ts or planning an action (#27). Bazel keeps
// its loaded packages in a server's memory; wmb keeps a file per (workspace, targets, options)
// under the store and checks every input of every key against it:
//
// - BUILD.ts's text (in the memo's name), when BUILD.ts reads nothing but its own text
//   (LoadedWorkspace.selfContained), and its globs' listings, expanded again;
// - the environment variables the closure's rules read;
// - every source file's stat signature (as the stat cache hashes by it);
// - the store's generation (migration 9): unchanged means no result was recorded, replaced or
//   dropped, no blob dropped or re-verified and no action recorded since the memo was made, so
//   each key is served the same result and the history needs no new row;
// - every served blob's stat signature, as it was verified (a changed blob is re-hashed by a
//   full build), and every file delivered to wmb-out/.
//
// Anything different, missing or unreadable, and the build runs the full way (which may write
// a new memo). A memo is written only by a build that served every action from the store, with
// no remote cache, no toolchain in its closure and no machine among its targets.
import { mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync, type BigIntStats } from "node:fs";
import { join } from "node:path";
import { hashBytes, type ActionKey, type Digest } from "./digest.ts";
import type { ActionReport, BuildEvents, BuildSummary } from "./build.ts";
import type { Target } from "./build-file.ts";
import { expandGlobs } from "./glob.ts";
import { span } from "./trace.ts";
import { nowNs, racilyClean, statSignatureOf } from "./source-hash.ts";
import type { SandboxMode, SandboxUse } from "./sandbox.ts";
import type { OutputMap, Store } from "../store/store.ts";

const FORMAT = 3;

/** A build the memo can stand for: what names it. */
export interface MemoedBuild {
  store: Store;
  /** The workspace root (absolute). */
  root: string;
  /** As the command line gave them (patterns unexpanded). */
  targets: string[];
  sandbox: SandboxMode;
  toolchain: string;
}

/** A build served from a memo: a BuildSummary without the graph (BUILD.ts was not loaded). */
export type MemoSummary = Omit<BuildSummary, "graph"> & { unchangedSince: number };

/** Each output with its blob's stat signature as verified (the one the store's index keeps). */
type MemoAction = [label: string, rule: string, key: ActionKey, sandbox: SandboxUse | null, outputs: [path: string, digest: Digest, blobSig: string][]];

interface NoopMemo {
  format: typeof FORMAT;
  generation: number;
  /** The build it repeats. */
  buildId: number;
  requested: string[];
  env: [name: string, value: string | null][];
  sources: [file: string, real: string, statSig: string][];
  globs: [dir: string, patterns: string[], files: string[]][];
  /** wmb-out/ files: absolute path, signature (with the mode). */
  delivered: [file: string, statSig: string][];
  materialized: string[];
  actions: MemoAction[];
}

/** What this wmb is (bin/wmb.mjs names its bundle or newest source file): a memo made by other
 * code could name keys this one computes otherwise. Undefined (no memo) when not started by it. */
function codeStamp(): string | undefined {
  return (globalThis as { __wmbCode?: string }).__wmbCode;
}

function memoFile(b: MemoedBuild, buildFileText: string): string | undefined {
  const code = codeStamp();
  if (code === undefined) return undefined;
  const name = hashBytes(JSON.stringify([FORMAT, code, b.root, hashBytes(buildFileText), b.targets, b.sandbox, b.toolchain]));
  return join(b.store.noopMemoDir, `${name}.json`);
}

/** The build as its memo says it would go, when every input of every key is as the memo found
 * it; undefined otherwise (the caller builds). Records the build in the history. */
export async function servedFromMemo(b: MemoedBuild, events: BuildEvents | undefined, signal: AbortSignal | undefined, warn: (m: string) => void): Promise<MemoSummary | undefined> {
  const started = performance.now();
  let memo: NoopMemo;
  try {
    const file = memoFile(b, readFileSync(join(b.root, "BUILD.ts"), "utf8"));
    if (!file) return undefined;
    const t0 = performance.now();
    memo = JSON.parse(readFileSync(file, "utf8")) as NoopMemo;
    span("read the no-op memo", "build", t0, performance.now() - t0);
    if (memo.format !== FORMAT) return undefined;
  } catch {
    return undefined; // no BUILD.ts (the full build says so), or no memo yet
  }
  // Held until the process ends, as a build holds it: gc never sweeps what this one serves.
  await b.store.lease(warn, signal);
  const t0 = performance.now();
  const same = unchanged(b.store, memo);
  span("check every input the memo names", "build", t0, performance.now() - t0);
  if (!same) return undefined;
  const buildId = b.store.history.begin({ command: "build", targets: memo.requested, workspace: b.root });
  const actions: ActionReport[] = memo.actions.map(([label, rule, key, sandbox, outputs]) => {
    const digests: Record<string, Digest> = {};
    for (const [path, digest] of outputs) digests[path] = digest;
    return { label, rule, key, status: "cached", durationMs: 0, outputs: digests, sandbox: sandbox ?? undefined };
  });
  events?.planned?.(actions.length);
  if (events?.finished) for (const a of actions) events.finished(a);
  const counts = { cached: actions.length, remote: 0, executed: 0, failed: 0, skipped: 0 };
  b.store.history.finish(buildId, "ok", { counts, criticalPath: [] });
  return {
    buildId,
    targets: memo.requested,
    ok: true,
    interrupted: false,
    actions,
    counts,
    durationMs: performance.now() - started,
    materialized: memo.materialized,
    toolchainUsed: false,
    unchangedSince: memo.buildId,
  };
}

/** Whether every input the memo names is as it found it. */
function unchanged(store: Store, memo: NoopMemo): boolean {
  if (store.generation() !== memo.generation) return false;
  for (const [name, value] of memo.env) if ((process.env[name] ?? null) !== value) return false;
  for (const [file, real, sig] of memo.sources) {
    try {
      if (realpathSync(file) !== real || signatureNow(real) !== sig) return false;
    } catch {
      return false;
    }
  }
  for (const [dir, patterns, files] of memo.globs) {
    const now = expandGlobs(dir, patterns);
    if (now.length !== files.length || now.some((f, i) => f !== files[i])) return false;
  }
  for (const a of memo.actions) for (const [, digest, sig] of a[4]) if (store.cas.statSig(digest) !== sig) return false;
  for (const [file, sig] of memo.delivered) if (signatureNow(file) !== sig) return false;
  return true;
}

/** A file's size, mtime, ctime, inode and mode, from a plain stat: a BigIntStats makes four Date
 * objects, a fifth of a memo no-op at 20,000 actions. The times as the plain stat gives them
 * (milliseconds, a double), which memoSignature computes from the nanoseconds. */
function signatureNow(file: string): string | undefined {
  const st = statSync(file, { throwIfNoEntry: false });
  return st && `${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.ino}:${st.mode}`;
}

/** signatureNow's text for a file stat'ed with bigint: true (as a build stats them). */
function memoSignature(st: BigIntStats): string {
  return `${st.size}:${msOf(st.mtimeNs)}:${msOf(st.ctimeNs)}:${st.ino}:${st.mode}`;
}

/** Node's own arithmetic for a plain stat's times: seconds times 1000 plus nanoseconds / 1e6. */
function msOf(ns: bigint): number {
  return Number(ns / 1_000_000_000n) * 1000 + Number(ns % 1_000_000_000n) / 1_000_000;
}

/** Memos a store keeps (one per target set and flags; those of older wmb code are never read). */
const KEPT_MEMOS = 16;

function keepNewest(dir: string, n: number): void {
  const files = readdirSync(dir).filter((f) => f.endsWith(".json"));
  if (files.length <= n) return;
  const byAge = files.map((f) => ({ f, t: statSync(join(dir, f), { throwIfNoEntry: false })?.mtimeMs ?? 0 })).sort((a, b) => b.t - a.t);
  for (const { f } of byAge.slice(n)) rmSync(join(dir, f), { force: true });
}

/** What a build that served everything from the store found, for the next identical build. */
export interface MemoInputs {
  generation: number;
  buildId: number;
  requested: string[];
  closure: Target[];
  results: Map<string, OutputMap>;
  reports: Map<string, ActionReport>;
  /** The sources checked, each as resolved and stat'ed, and the moment they were looked at. */
  sources: { file: string; real: string; st: BigIntStats }[];
  sourcesLookedAt: bigint;
  materialized: string[];
}

/** Write the memo, unless something it would rely on may still change unseen (a file modified
 * within a clock tick of being looked at, a blob not as verified): then the next build runs the
 * full way, as this one did. Never fails the build: a memo is a shortcut. */
export function writeMemo(b: MemoedBuild, buildFileText: string, m: MemoInputs): void {
  const file = memoFile(b, buildFileText);
  if (!file) return;
  const env = new Map<string, string | null>();
  for (const t of m.closure) for (const name of t.rule.env?.(t.attrs) ?? []) env.set(name, process.env[name] ?? null);
  const sources: NoopMemo["sources"] = [];
  for (const s of m.sources) {
    if (racilyClean(s.st, m.sourcesLookedAt)) return;
    sources.push([s.file, s.real, memoSignature(s.st)]);
  }
  const globs: NoopMemo["globs"] = m.closure
    .filter((t) => t.rule.name === "glob")
    .map((t) => [join(b.root, t.pkg), t.attrs.patterns as string[], t.attrs.srcs ?? []]);
  const digests = new Set<Digest>();
  for (const t of m.closure) for (const o of Object.values(m.results.get(t.label) ?? {})) digests.add(o.digest);
  const verified = b.store.verifiedSigs([...digests]);
  // Each served blob as it was verified (a full build re-hashes one that is not).
  for (const d of digests) {
    const sig = verified.get(d);
    if (sig === undefined || b.store.cas.statSig(d) !== sig) return;
  }
  const delivered: NoopMemo["delivered"] = [];
  const lookedAt = nowNs();
  const byLabel = new Map(m.closure.map((t) => [t.label, t]));
  for (const label of m.requested) {
    const t = byLabel.get(label)!;
    for (const [path, o] of Object.entries(m.results.get(label) ?? {})) {
      const dest = join(b.root, "wmb-out", t.pkg, path);
      const st = statSync(dest, { bigint: true, throwIfNoEntry: false });
      // As delivered: the bytes the stat cache hashed at this signature, and the mode.
      if (!st || racilyClean(st, lookedAt) || b.store.cachedDigest(dest, statSignatureOf(st)) !== o.digest || ((st.mode & 0o111n) !== 0n) !== o.executable) return;
      delivered.push([dest, memoSignature(st)]);
    }
  }
  const actions: MemoAction[] = [];
  for (const t of m.closure) {
    const r = m.reports.get(t.label);
    const outputs = m.results.get(t.label);
    if (!r?.key || !outputs) return;
    // Under auto, a result made unsandboxed was taken because bwrap did not work: once it does,
    // the full way would run the action again under it.
    if (b.sandbox === "auto" && r.sandbox === "none") return;
    actions.push([r.label, r.rule, r.key, r.sandbox ?? null, Object.entries(outputs).map(([path, o]) => [path, o.digest, verified.get(o.digest)!])]);
  }
  const memo: NoopMemo = { format: FORMAT, generation: m.generation, buildId: m.buildId, requested: m.requested, env: [...env], sources, globs, delivered, materialized: m.materialized, actions };
  try {
    mkdirSync(b.store.noopMemoDir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(memo));
    renameSync(tmp, file);
    keepNewest(b.store.noopMemoDir, KEPT_MEMOS);
  } catch {
    rmSync(`${file}.${process.pid}.tmp`, { force: true });
  }
}
