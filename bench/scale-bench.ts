// Scale: the generated graph of scale-workspace.ts at 2,000 and 20,000 actions, every `run`
// target on the command line, -j 2, next to make on the same graph in the same run. Wall time
// and peak memory come from /usr/bin/time (the child's own accounting).
import { spawnSync } from "node:child_process";
import { existsSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { fmt, REPO, row, section } from "./harness.ts";
import { scaleWorkspace } from "./scale-workspace.ts";

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
  for (const n of sizes) {
    section(`scale: ${n.toLocaleString("en")} actions (write -> run pairs), -j 2, paired with make`);
    const ws = scaleWorkspace(n);
    const wmb = [process.execPath, join(REPO, "bin/wmb.mjs"), "build", "-j", "2", ...ws.labels];
    const cold = timed(ws.dir, wmb);
    const make = timed(ws.makeDir, ["make", "-s", "-j2", "all"]);
    row("cold build (wall)", fmt(cold.ms), `make ${fmt(make.ms)}, ratio ${(cold.ms / make.ms).toFixed(1)}x (goal <= 2x); peak ${cold.peakMb?.toFixed(0)} MB`);
    const index = join(ws.dir, ".wmb/index.sqlite");
    timed(ws.dir, wmb); // the first no-op also stat-caches wmb-out/, once
    const sizeAfterFirst = statSync(index).size;
    const noops = [0, 1, 2].map(() => timed(ws.dir, wmb));
    const median = noops.map((r) => r.ms).sort((a, b) => a - b)[1]!;
    const makeNoop = timed(ws.makeDir, ["make", "-s", "-j2", "all"]);
    row("no-op build (wall, median of 3)", fmt(median), `make ${fmt(makeNoop.ms)}; peak ${noops[1]!.peakMb?.toFixed(0)} MB (goal <= 300 MB)`);
    row("index growth over 3 more no-ops", `${(((statSync(index).size - sizeAfterFirst) / sizeAfterFirst) * 100).toFixed(1)} %`, "goal: within 10% after 100");
    rmSync(ws.dir, { recursive: true, force: true });
    rmSync(ws.makeDir, { recursive: true, force: true });
  }
}
