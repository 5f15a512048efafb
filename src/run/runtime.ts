// Runs a transpiled WASI 0.2 component with exactly the capabilities it is given (run-grant.ts
// derives them from the sealed spec): the rootfs read-only as `/`, one host directory
// read-write per declared writable path, only the granted WASI interfaces, `HOME=/` and nothing
// else in the environment, the given args, stdio passed through, no network.
//
// The guest runs in a child process (guest-runner.mjs), not in wmb's own process:
// - preview2-shim implements `exit` with process.exit and blocking stdin with a worker and
//   Atomics.wait on fd 0: in a child both are native and cannot take wmb down or stall it;
// - the guest's stdio are real fds, so pipes, files and ttys behave as for any command
//   (`echo "select 1;" | wmb run …` works, a tty gets prompts);
// - a trap, an out-of-memory or Ctrl-C ends the child only, and shim state (preopens, open
//   descriptors) never leaks from one run into the next.
// The cost is one `node` start (~60 ms) per run, which `wmb run` overlaps with resolving and
// checking the machine (startRunner).
//
// The guest runs on the runner's one thread: WASI 0.2 has no threads, so a profile's `cpus`
// (>= 1) is an upper bound that needs no enforcing here.
import type { ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { existsSync, promises as fsp } from "node:fs";
import { constants as osConstants } from "node:os";
import { join, relative, isAbsolute } from "node:path";
import type { Socket } from "node:net";
import type { Readable, Writable } from "node:stream";
import { WmbError, type ErrorCode } from "../errors.ts";
import { MANIFEST_FILE } from "./transpile.ts";
import { wmbFile } from "../repo-root.ts";
import { span, tracing } from "../trace.ts";

type RunnerProcess = { child: ChildProcess; closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }> };
const { spawnRunner } = createRequire(import.meta.url)(wmbFile("src/run/runner-process.cjs")) as {
  spawnRunner(stdio: ("inherit" | "ignore" | "pipe" | number)[], shownAs?: string): RunnerProcess;
};
declare global {
  // eslint-disable-next-line no-var
  var __wmbEarlyRunner: RunnerProcess | undefined;
}

/** What the runner implements (kept in a module of its own: the tab's runner shares it). */
export { RUNNER_INTERFACES } from "./runner-interfaces.ts";

/** No dedicated code exists yet for "the machine could not be started"; the CLI may add one. */
const RUN_ERROR: ErrorCode = "ACTION_FAILED";

/** The exit status the runner uses for its own failures (reported on the side channel). */
const HOST_FAILURE_EXIT = 125;

/** A stream, bytes to feed, or this process's stdin ("inherit") or none ("ignore": EOF at once). */
export type StdinSource = Readable | NodeJS.ReadableStream | Uint8Array | "inherit" | "ignore";
export type OutputSink = Writable | NodeJS.WritableStream | "inherit" | "ignore";

export interface RunMachineOptions {
  /** Directory written by transpileComponent (wmb-transpile.json, the module, its core wasm),
   * unless `jsFiles` says where each file is. */
  jsDir: string;
  /** Where each transpiled file is, by name (e.g. the store's blobs, read in place), instead of
   * in jsDir. */
  jsFiles?: Record<string, string>;
  /** Extracted rootfs, mounted read-only as `/`. */
  rootfsDir: string;
  /** Host directories mounted read-write at guest paths (none: nothing is writable). They must
   * not overlap the rootfs or each other. */
  mounts: WritableMount[];
  /** The WASI interfaces the guest may import, unversioned ("wasi:cli/stdout"); any other import
   * is refused before the guest starts. */
  interfaces: string[];
  /** Guest arguments after argv[0]. */
  args: string[];
  /** The guest's argv[0] (a machine's spec name). */
  argv0: string;
  /** Default "inherit" for all three. */
  stdin?: StdinSource;
  stdout?: OutputSink;
  stderr?: OutputSink;
  /** Aborting kills the guest; runMachine then resolves with 128 + SIGTERM (143). */
  signal?: AbortSignal;
  /** The V8 code cache to compile the component's module with (`read`, when there is one), and
   * where to write one when there is none or V8 rejects it (`write`: the caller keeps it, see
   * runResolvedMachine). Without it no cache is read or written. */
  codeCache?: { read?: string; write: string };
  /** Called once the run ends, with where the time went. */
  onTiming?: (timing: RunTiming) => void;
}

export interface WritableMount {
  /** Absolute guest path, e.g. "/db". */
  guest: string;
  /** Host directory behind it. */
  host: string;
}

export interface RunTiming {
  /** From spawn until the component was instantiated (node start + module load + wasm compile). */
  startMs: number;
  /** From instantiation until the guest exited (what the guest itself took), when known. */
  runMs?: number;
  /** From spawn until the guest's process ended. */
  totalMs: number;
}

/**
 * Run the guest and resolve with its exit code (0-255; 134 when it traps; 128+n when killed by
 * signal n). Rejects with a WmbError when the machine cannot be started at all: a missing
 * directory, overlapping mounts, or a component that imports a capability that is not granted
 * (wasi:sockets, wasi:http, …).
 */
export async function runMachine(opts: RunMachineOptions): Promise<number> {
  const config = await runnerConfig(opts);
  return startRunner(opts, config.rootfsDir).run(opts, config);
}

/** A runner process started before its machine is resolved (see startRunner). */
export interface StartedRunner {
  /** Hand the runner its machine and wait for the guest's exit code (as runMachine). */
  run(opts: RunMachineOptions, config?: RunnerConfig): Promise<number>;
  /** End a runner that will not be used (the machine failed to resolve); no-op once run. */
  cancel(): void;
}

/**
 * Start a runner with these stdio, before the machine is known: Node, preview2-shim and the
 * shim's I/O thread start while the caller still builds and checks the machine (a warm `wmb run`
 * overlaps the two, #12). The runner does nothing until `run` sends it its config on fd 3; it
 * has loaded no guest code by then.
 */
export function startRunner(io: Pick<RunMachineOptions, "stdin" | "stdout" | "stderr"> = {}, shownAs?: string): StartedRunner {
  for (const s of [io.stdin, io.stdout, io.stderr]) {
    if (typeof s === "string" && s !== "inherit" && s !== "ignore") {
      throw new TypeError(`runMachine: stdio must be a stream, bytes, "inherit" or "ignore", not ${JSON.stringify(s)}`);
    }
  }
  const stdinIsData = io.stdin instanceof Uint8Array;
  const stdio = [stdioFor(io.stdin, 0, stdinIsData), stdioFor(io.stdout, 1, false), stdioFor(io.stderr, 2, false)];
  const started = performance.now();
  // A plain `wmb run` finds its runner started by bin/wmb.mjs already, with these same stdio.
  const early = globalThis.__wmbEarlyRunner;
  const plainStdio = io.stdin === undefined && io.stdout === undefined && io.stderr === undefined;
  if (early) delete globalThis.__wmbEarlyRunner;
  if (early && !plainStdio) early.child.kill("SIGKILL");
  const { child, closed: exited } = early && plainStdio ? early : spawnRunner(stdio, shownAs);

  if (child.stdin) {
    // The guest may exit without reading all of its input: that is not an error of ours.
    child.stdin.on("error", () => {});
    if (stdinIsData) child.stdin.end(io.stdin as Uint8Array);
    else (io.stdin as NodeJS.ReadableStream).pipe(child.stdin);
  }
  if (child.stdout) child.stdout.pipe(io.stdout as NodeJS.WritableStream, { end: false });
  if (child.stderr) child.stderr.pipe(io.stderr as NodeJS.WritableStream, { end: false });

  let sideChannel = "";
  const channel = child.stdio[3] as Socket;
  channel.on("error", () => {});
  // The guest's status as the runner says it, before that process has wound down.
  const reportedExit = new Promise<number>((resolve) => {
    channel.on("data", (chunk: Buffer) => {
      sideChannel += chunk.toString("utf8");
      const exit = sideMessages(sideChannel).find((m) => m.exit !== undefined)?.exit;
      if (exit !== undefined) resolve(exit);
    });
  });
  let used = false;

  return {
    cancel() {
      if (used) return;
      used = true;
      child.kill("SIGKILL");
    },
    async run(opts, given) {
      if (used) throw new Error("startRunner: this runner was already used or cancelled");
      used = true;
      let config: RunnerConfig;
      try {
        config = given ?? (await runnerConfig(opts));
      } catch (e) {
        child.kill("SIGKILL");
        throw e;
      }
      channel.write(JSON.stringify(config) + "\n");
      const onAbort = () => child.kill("SIGTERM");
      if (opts.signal?.aborted) onAbort();
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      try {
        // With the guest's output on this process's own fds there is nothing to drain: the status
        // the runner reports as it exits is final, and its winding down need not be waited for.
        const { code, signal } =
          child.stdout || child.stderr ? await exited : await Promise.race([exited, reportedExit.then((c) => ({ code: c, signal: null }))]);
        child.unref();
        channel.unref();
        if (child.stdin && !stdinIsData) (io.stdin as NodeJS.ReadableStream).unpipe(child.stdin);

        let hostError: string | undefined;
        let marks: RunnerMarks | undefined;
        for (const msg of sideMessages(sideChannel)) {
          if (msg.error !== undefined) hostError = msg.error;
          if (msg.marks !== undefined) marks = msg.marks;
        }
        const totalMs = performance.now() - started;
        if (marks) traceRunner(marks);
        opts.onTiming?.({
          startMs: marks?.instantiated !== undefined ? marks.instantiated - marks.started : totalMs,
          runMs: marks?.instantiated !== undefined ? marks.exited - marks.instantiated : undefined,
          totalMs,
        });
        if (hostError !== undefined) {
          throw new WmbError(RUN_ERROR, `wmb run: ${hostError}`, { subject: opts.jsDir });
        }
        if (signal !== null) return 128 + (osConstants.signals[signal] ?? 0);
        if (code === HOST_FAILURE_EXIT && sideChannel === "" && !opts.signal?.aborted) {
          // The runner died before it could report (e.g. it could not load preview2-shim).
          return code;
        }
        return code ?? 1;
      } finally {
        opts.signal?.removeEventListener("abort", onAbort);
      }
    },
  };
}

/** What the runner said on fd 3, one JSON object per complete line. */
function sideMessages(text: string): { error?: string; exit?: number; marks?: RunnerMarks }[] {
  const lines = text.split("\n");
  lines.pop(); // an incomplete last line, or ""
  return lines.filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
}

/** The runner's milestones, epoch milliseconds (guest-runner.mjs); instantiated and later are
 * missing when it failed before. */
interface RunnerMarks {
  started: number;
  loaded: number;
  configured: number;
  imported?: number;
  instantiated?: number;
  exited: number;
}

/** The runner's phases as spans of this process's trace, on a lane of their own. */
function traceRunner(marks: RunnerMarks): void {
  if (!tracing()) return;
  const local = (epochMs: number) => epochMs - performance.timeOrigin;
  const phases: [string, number, number | undefined][] = [
    ["runner: node start-up and shims", marks.started, marks.loaded],
    ["runner: waits for its config", marks.loaded, marks.configured],
    ["runner: loads the component's JS", marks.configured, marks.imported],
    ["runner: compiles and instantiates", marks.imported ?? marks.configured, marks.instantiated],
    ["runner: the guest runs and exits", marks.instantiated ?? marks.configured, marks.exited],
  ];
  for (const [name, from, to] of phases) if (to !== undefined) span(name, "run", local(from), to - from, RUNNER_LANE);
}

/** The trace lane of the runner's phases (0 is the main thread, actions use 1 and up). */
const RUNNER_LANE = 100;

export interface RunnerConfig {
  jsDir: string;
  jsFiles?: Record<string, string>;
  rootfsDir: string;
  mounts: WritableMount[];
  interfaces: string[];
  args: string[];
  timing: boolean;
  codeCache?: { read?: string; write: string };
}

async function runnerConfig(opts: RunMachineOptions): Promise<RunnerConfig> {
  const jsDir = await realDir(opts.jsDir, "transpiled component");
  const rootfsDir = await realDir(opts.rootfsDir, "rootfs");
  const mounts: WritableMount[] = [];
  for (const m of opts.mounts) mounts.push({ guest: m.guest, host: await realDir(m.host, m.guest) });
  if (!existsSync(opts.jsFiles?.[MANIFEST_FILE] ?? join(jsDir, MANIFEST_FILE))) {
    throw new WmbError(RUN_ERROR, `${jsDir} holds no ${MANIFEST_FILE}: transpile the component first.`, {
      subject: jsDir,
    });
  }
  // Overlapping mounts would let the guest write the rootfs, or one mount through another.
  const dirs = [{ guest: "/", host: rootfsDir }, ...mounts];
  for (let i = 0; i < dirs.length; i++) {
    for (let j = i + 1; j < dirs.length; j++) {
      const [a, b] = [dirs[i]!, dirs[j]!];
      if (isInside(a.host, b.host) || isInside(b.host, a.host)) {
        const which = (d: WritableMount) => (d.guest === "/" ? `the rootfs ${d.host}` : `the directory ${d.host} for ${d.guest}`);
        throw new WmbError("USAGE", `${which(b)} and ${which(a)} overlap: give each writable path a directory of its own, outside the rootfs.`, { subject: b.host });
      }
    }
  }
  return { jsDir, jsFiles: opts.jsFiles, rootfsDir, mounts, interfaces: opts.interfaces, args: [opts.argv0, ...opts.args], timing: opts.onTiming !== undefined || tracing(), codeCache: opts.codeCache };
}

async function realDir(path: string, what: string): Promise<string> {
  let real: string;
  try {
    real = await fsp.realpath(path);
  } catch {
    throw new WmbError(RUN_ERROR, `the ${what} directory ${path} does not exist.`, { subject: path });
  }
  if (!(await fsp.stat(real)).isDirectory()) {
    throw new WmbError(RUN_ERROR, `the ${what} path ${path} is not a directory.`, { subject: path });
  }
  return real;
}

function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

/** The process's own stdio are passed as fds (a tty stays a tty); other streams are piped. */
function stdioFor(s: StdinSource | OutputSink | undefined, fd: 0 | 1 | 2, isData: boolean): "inherit" | "ignore" | "pipe" | number {
  if (isData) return "pipe";
  if (s === undefined || s === "inherit") return fd;
  if (s === "ignore") return "ignore";
  if (s === process.stdin) return 0;
  if (s === process.stdout) return 1;
  if (s === process.stderr) return 2;
  return "pipe";
}
