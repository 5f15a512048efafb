// Scale: the generated graph of scale-workspace.ts at 2,000 and 20,000 actions, every `run`
// target on the command line, -j 2, next to make on the same graph in the same run: cold with
// commands unsandboxed (as make runs them), and under bwrap paired with make round by round
// (wmb, make, wmb, make, … on fresh workspaces: the host is shared). Wall time
// and peak memory come from /usr/bin/time (the child's own accounting).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bwrapArgs, probeBwrap, SANDBOX_BUILD_DIR } from "../src/sandbox-bwrap.ts";
import { fmt, median, REPO, row, section } from "./harness.ts";
import { scaleWorkspace, type ScaleWorkspace } from "./scale-workspace.ts";

const TIME = "/usr/bin/time";

function timed(cwd: string, argv: string[]): { ms: number; peakMb?: number } {
  const useTime = existsSync(TIME);
  const t0 = performance.now();
  const r = spawnSync(useTime ? TIME : argv[0]!, useTime ? ["-f", "%M", ...argv] : argv.slice(1), { cwd, encoding: "utf8", maxBuffer: 256 << 20 });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${argv.slice(0, 3).join(" ")} … exited ${r.status}:\n${r.stderr.slice(-2000)}`);
  const kb = useTime ? Number(r.stderr.trim().split("\n").pop()) : NaN;
  return { ms, peakMb: Number.isFinite(kb) ? kb / 1024 : undefined };
}

export async function scaleBench(sizes = [2000, 20000]): Promise<void> {
  const bwrap = await probeBwrap();
  for (const n of sizes) {
    section(`scale: ${n.toLocaleString("en")} actions (write -> run pairs), -j 2, paired with make`);
    const ws = scaleWorkspace(n);
    const wmb = (...flags: string[]) => [process.execPath, join(REPO, "bin/wmb.mjs"), "build", "-j", "2", ...flags, ...ws.labels];
    // make runs its commands as they are: the like-for-like figure runs wmb's unsandboxed too.
    const cold = timed(ws.dir, wmb("--sandbox", "none"));
    const make = timed(ws.makeDir, ["make", "-s", "-j2", "all"]);
    row("cold build, commands unsandboxed (wall)", fmt(cold.ms), `make ${fmt(make.ms)}, ratio ${(cold.ms / make.ms).toFixed(1)}x (goal <= 2x); peak ${cold.peakMb?.toFixed(0)} MB (goal <= 200 MB)`);
    const index = join(ws.dir, ".wmb/index.sqlite");
    // The no-ops run as the cold build did (a bwrap build would run again what ran unsandboxed).
    const noop = () => timed(ws.dir, wmb("--sandbox", "none"));
    noop(); // the first no-op stat-caches wmb-out/, once, and leaves the no-op memo
    const sizeAfterFirst = statSync(index).size;
    /** The run of median wall time (its peak is the one printed with it). */
    const medianRun = (runs: { ms: number; peakMb?: number }[]) => [...runs].sort((x, y) => x.ms - y.ms)[Math.floor(runs.length / 2)]!;
    const makeNoop = timed(ws.makeDir, ["make", "-s", "-j2", "all"]);
    // The full way: BUILD.ts loaded, every action planned and looked up (an incremental build's path).
    const full = medianRun([0, 1, 2].map(() => (rmSync(join(ws.dir, ".wmb/noop"), { recursive: true, force: true }), noop())));
    row("no-op build, the full way (wall, median of 3)", fmt(full.ms), `make ${fmt(makeNoop.ms)}; peak ${full.peakMb?.toFixed(0)} MB`);
    const memo = medianRun([0, 1, 2].map(noop));
    const goal = n >= 20000 ? "0.5 s" : n >= 2000 ? "0.15 s" : "-";
    row("no-op build, from the memo (wall, median of 3)", fmt(memo.ms), `goal <= ${goal}; peak ${memo.peakMb?.toFixed(0)} MB (goal <= 200 MB)`);
    row("index growth over 6 more no-ops", `${(((statSync(index).size - sizeAfterFirst) / sizeAfterFirst) * 100).toFixed(1)} %`, "goal: within 10% after 100");
    // Last: the sandboxed cold builds and removing their files keep the disk busy for a while
    // (this root filesystem discards freed blocks), which the no-op figures above would feel.
    if (bwrap.ok) {
      sandboxedPairs(n, wmb);
      row("bwrap's own start, a command", `${bwrapStartMs(bwrap.bwrap).toFixed(1)} ms`, "what a sandboxed lane pays once, not per command");
    } else row("cold build, commands under bwrap", "-", bwrap.reason);
    rmSync(ws.dir, { recursive: true, force: true });
    rmSync(ws.makeDir, { recursive: true, force: true });
  }
}

/** Cold sandboxed builds paired with make: wmb, make, make, wmb, … each on a fresh workspace,
 * so both see the same load on this shared host; the medians and their ratio. */
function sandboxedPairs(n: number, wmb: (...flags: string[]) => string[], rounds = n >= 20000 ? 3 : 5): void {
  const wmbMs: number[] = [];
  const makeMs: number[] = [];
  const made: ScaleWorkspace[] = [];
  for (let i = 0; i < rounds; i++) {
    const ws = scaleWorkspace(n);
    made.push(ws);
    const runWmb = () => wmbMs.push(timed(ws.dir, wmb("--sandbox", "bwrap")).ms);
    const runMake = () => makeMs.push(timed(ws.makeDir, ["make", "-s", "-j2", "all"]).ms);
    // Which goes first alternates, so neither always follows the other's disk writes.
    if (i % 2 === 0) (runWmb(), runMake());
    else (runMake(), runWmb());
  }
  // Removed after all rounds: freeing thousands of inodes slows the next creations on this disk.
  for (const w of made) for (const d of [w.dir, w.makeDir]) rmSync(d, { recursive: true, force: true });
  const ratios = wmbMs.map((x, i) => x / makeMs[i]!);
  row(
    `cold build under bwrap vs make, paired (median of ${rounds})`,
    fmt(median(wmbMs)),
    `make ${fmt(median(makeMs))}, median pair ${median(ratios).toFixed(2)}x (goal <= 2x); each pair: ${ratios.map((r) => r.toFixed(2)).join(", ")}`,
  );
}

/** What starting a command under bwrap costs on this host, over starting it plainly: the floor
 * of a sandboxed build's cost per command, whatever the engine does (100 runs of `true`). */
function bwrapStartMs(bwrap: string): number {
  const dir = mkdtempSync(join(tmpdir(), "wmb-bwrap-floor-"));
  const loop = (argv: string[]) => {
    const t0 = performance.now();
    for (let i = 0; i < 100; i++) spawnSync(argv[0]!, argv.slice(1), { stdio: "ignore" });
    return (performance.now() - t0) / 100;
  };
  const floor = loop(["/usr/bin/true"]);
  const sandboxed = loop([bwrap, ...bwrapArgs(dir, SANDBOX_BUILD_DIR, undefined, ["/usr/bin/true"])]);
  rmSync(dir, { recursive: true, force: true });
  return sandboxed - floor;
}
