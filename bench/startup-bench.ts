// Start-up figures (issue #12): the commands developers run hundreds of times a day, each next
// to the floor of `node -e 0` measured in the same run, alternated run by run so a drifting
// machine moves both. Uses the repository's own workspace and default store (warm after the
// first build, as on a developer's machine).
import { spawnSync } from "node:child_process";
import { appendFileSync, copyFileSync, cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli, fmt, median, REPO, row, section } from "./harness.ts";

const WMB = join(REPO, "bin/wmb.mjs");
const RUNS = 11;

function wallMs(cwd: string, args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { cwd, stdio: "ignore" });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`node ${args.join(" ")} exited ${r.status}`);
  return ms;
}

/** Median of `wmb args` and of the floor, alternated; `before` runs ahead of each wmb run, untimed. */
function paired(cwd: string, args: string[], before?: () => void): { ms: number; floor: number } {
  const wmb: number[] = [];
  const floor: number[] = [];
  wallMs(cwd, [WMB, ...args]); // warm-up: page cache, and the bundle's code cache for this command
  for (let i = 0; i < RUNS; i++) {
    floor.push(wallMs(cwd, ["-e", "0"]));
    before?.();
    wmb.push(wallMs(cwd, [WMB, ...args]));
  }
  return { ms: median(wmb), floor: median(floor) };
}

function report(name: string, r: { ms: number; floor: number }, budget?: number): void {
  const over = r.ms - r.floor;
  const goal = budget === undefined ? "" : ` (goal floor + ${budget} ms: ${over <= budget ? "met" : "not met"})`;
  row(name, fmt(r.ms), `floor ${fmt(r.floor)} + ${fmt(over)}${goal}`);
}

export async function startupBench(): Promise<void> {
  section(`start-up (median of ${RUNS}, each next to \`node -e 0\`)`);
  report("wmb --version", paired(REPO, ["--version"]), 20);
  report("wmb --help", paired(REPO, ["--help"]), 20);

  cli(REPO, ["build", "//sqlite-cli:sealed"]); // warm the default store (cold the first time)
  report("no-op build //sqlite-cli:sealed", paired(REPO, ["build", "//sqlite-cli:sealed"]), 40);
  report("wmb query history //sqlite-cli:sealed", paired(REPO, ["query", "history", "//sqlite-cli:sealed"]));

  const ws = mkdtempSync(join(tmpdir(), "wmb-bench-startup-"));
  try {
    for (const f of ["BUILD.ts", "package.json"]) copyFileSync(join(REPO, f), join(ws, f));
    cpSync(join(REPO, "sqlite-cli"), join(ws, "sqlite-cli"), { recursive: true });
    cli(ws, ["build", "//sqlite-cli:sealed"]);
    let n = 0;
    const rootfsOnly = paired(ws, ["build", "//sqlite-cli:sealed"], () => appendFileSync(join(ws, "sqlite-cli/rootfs/.sqliterc"), `-- bench ${n++}\n`));
    report("rootfs-only rebuild //sqlite-cli:sealed", rootfsOnly, 100);
  } finally {
    rmSync(ws, { recursive: true, force: true });
  }

  const run = paired(REPO, ["run", "//sqlite-cli:sealed", "--", "-version"]);
  const budget = 2 * run.floor + 50;
  row("warm run //sqlite-cli:sealed -- -version", fmt(run.ms), `goal two node start-ups + 50 ms = ${fmt(budget)}: ${run.ms <= budget ? "met" : "not met"}`);
}
