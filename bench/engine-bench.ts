// Engine figures: //examples and a generated graph of 2,000 actions (cold, no-op,
// one file changed), hashing throughput next to b3sum, action-cache lookups per second.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { hashFile, hashImplementation } from "../src/digest.ts";
import { Store } from "../store/store.ts";
import { cli, fmt, median, REPO, row, section } from "./harness.ts";

const LAYERS = 40;
const WIDTH = 50; // 40 x 50 = 2,000 actions

function generatedWorkspace(): string {
  const ws = mkdtempSync(join(tmpdir(), "wmb-bench-gen-"));
  writeFileSync(join(ws, "package.json"), '{ "type": "module" }\n');
  mkdirSync(join(ws, "gen/src"), { recursive: true });
  for (let l = 0; l < LAYERS; l++) for (let i = 0; i < WIDTH; i++) writeFileSync(join(ws, `gen/src/f${l}_${i}.txt`), `${l}:${i}\n`);
  // Each action concatenates its own source with two actions of the layer below.
  writeFileSync(
    join(ws, "BUILD.ts"),
    `import { promises as fsp } from "node:fs";
import { join } from "node:path";
const cat = { name: "cat", version: 1, outputs: (a) => [a.out], async run(ctx) {
  const parts = await Promise.all(ctx.inputs.map((i) => fsp.readFile(join(ctx.dir, i.path), "utf8")));
  await fsp.writeFile(join(ctx.dir, ctx.attrs.out), parts.join("").slice(0, 4096));
} };
export default (w) => {
  const p = w.package("gen");
  for (let l = 0; l < ${LAYERS}; l++) for (let i = 0; i < ${WIDTH}; i++) {
    const srcs = ["src/f" + l + "_" + i + ".txt"];
    if (l > 0) srcs.push(":n" + (l - 1) + "_" + i, ":n" + (l - 1) + "_" + ((i + 1) % ${WIDTH}));
    p.target(cat, { name: "n" + l + "_" + i, srcs, out: "o" + l + "_" + i + ".txt" });
  }
  p.target({ name: "top", version: 1, outputs: () => ["top.txt"], async run(ctx) { await fsp.writeFile(join(ctx.dir, "top.txt"), String(ctx.inputs.length)); } },
    { name: "all", srcs: Array.from({ length: ${WIDTH} }, (_, i) => ":n${LAYERS - 1}_" + i) });
};
`,
  );
  return ws;
}

export async function engineBench(): Promise<void> {
  section("//examples");
  const store = mkdtempSync(join(tmpdir(), "wmb-bench-store-"));
  const env = { WMB_STORE: store };
  row("cold build", fmt(cli(REPO, ["build", "//examples:hello"], env).ms));
  const noops = [0, 1, 2, 3, 4].map(() => cli(REPO, ["build", "//examples:hello"], env).ms);
  row("no-op build (wall, median of 5)", fmt(median(noops)), "target < 300 ms");
  rmSync(store, { recursive: true, force: true });

  section("generated graph: 2,000 actions");
  const ws = generatedWorkspace();
  const cold = cli(ws, ["build", "//gen:all"]);
  row("cold build (wall)", fmt(cold.ms));
  const noop = [0, 1, 2].map(() => cli(ws, ["build", "//gen:all"]).ms);
  row("no-op build (wall, median of 3)", fmt(median(noop)), "target < 1 s");
  writeFileSync(join(ws, `gen/src/f${LAYERS - 2}_7.txt`), `changed ${Date.now()}\n`);
  const one = cli(ws, ["build", "--json", "//gen:all"]);
  const executed = (JSON.parse(one.stdout) as { counts: { executed: number } }).counts.executed;
  row("one-file-changed build (wall)", fmt(one.ms), `${executed} actions executed`);

  section("hashing");
  const file = join(tmpdir(), `wmb-bench-hash-${process.pid}`);
  writeFileSync(file, randomBytes(256 << 20));
  await hashFile(file); // warm the page cache
  const t0 = performance.now();
  await hashFile(file);
  const ours = 256 / ((performance.now() - t0) / 1000);
  row(`wmb hashFile (${hashImplementation()})`, `${ours.toFixed(0)} MB/s`);
  if (hasB3sum()) {
    const t1 = performance.now();
    execFileSync("b3sum", ["--num-threads", "1", file]);
    const b3 = 256 / ((performance.now() - t1) / 1000);
    row("b3sum --num-threads 1", `${b3.toFixed(0)} MB/s`, `ratio ${(ours / b3).toFixed(2)} (target >= 0.5)`);
  } else {
    row("b3sum", "n/a", "apt-get install b3sum to compare");
  }
  rmSync(file, { force: true });

  section("action cache");
  const s = await Store.open(join(ws, ".wmb"));
  const keys = s.actionKeys(500);
  const t2 = performance.now();
  let n = 0;
  while (performance.now() - t2 < 1000) for (const k of keys.slice(0, 500)) if (s.lookupResult(k)) n++;
  row("lookups per second (key -> outputs)", `${Math.round(n / ((performance.now() - t2) / 1000))}/s`);
  s.close();
  rmSync(ws, { recursive: true, force: true });
}

function hasB3sum(): boolean {
  try {
    execFileSync("b3sum", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return existsSync("/usr/bin/b3sum");
  }
}
