// Engine figures: //examples and a generated graph of 2,000 actions (cold, no-op,
// one file changed), hashing throughput next to b3sum, action-cache lookups per second (on
// the 2,000-action store and on an index of a million results).
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import Database from "better-sqlite3";
import { hashBytes, hashFile, hashImplementation, type ActionKey } from "../src/digest.ts";
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
  await lookupsAtScale();
}

/** Lookups of an index holding a million results (rows written straight into a fresh store's
 * index: recording them through the store would take minutes and measure something else). */
export async function lookupsAtScale(): Promise<void> {
  const ROWS = 1_000_000;
  section(`action cache at ${ROWS.toLocaleString("en")} results`);
  const dir = mkdtempSync(join(tmpdir(), "wmb-bench-1m-"));
  (await Store.open(dir)).close(); // the schema, at the current version
  const db = new Database(join(dir, "index.sqlite"));
  db.pragma("synchronous = OFF");
  const t0 = performance.now();
  // Distinct 64-hex names without hashing two million strings; lookups below go in random order.
  const key = (i: number) => `a${i.toString(16).padStart(63, "0")}` as ActionKey;
  const blob = db.prepare("INSERT INTO blobs (digest, size, stat_sig, created_at) VALUES (?, 7, '7:0:0:0', 0)");
  const result = db.prepare(
    "INSERT INTO action_results (id, action_key, outputs_digest, label, rule, key_inputs, created_at, duration_ms, sandbox) VALUES (?, ?, ?, ?, 'run@1', '{}', ?, 1, 'bwrap')",
  );
  const output = db.prepare("INSERT INTO action_outputs (result_id, path, digest, executable) VALUES (?, 'out.txt', ?, 0)");
  db.transaction(() => {
    for (let i = 1; i <= ROWS; i++) {
      const digest = `b${i.toString(16).padStart(63, "0")}`;
      blob.run(digest);
      result.run(i, key(i), digest, `//p:t${i % 50_000}`, i);
      output.run(i, digest);
    }
  })();
  db.close();
  row("index written", fmt(performance.now() - t0), `${ROWS.toLocaleString("en")} results, one output each`);
  const store = await Store.open(dir);
  const sample = Array.from({ length: 20_000 }, (_, i) => key(1 + ((i * 48_271) % ROWS)));
  const t1 = performance.now();
  let hits = 0;
  for (const k of sample) if (store.lookupResult(k)) hits++;
  const perSecond = sample.length / ((performance.now() - t1) / 1000);
  row("lookups per second (key -> outputs), hits", `${Math.round(perSecond)}/s`, `${hits} of ${sample.length} found`);
  const misses = Array.from({ length: 20_000 }, (_, i) => hashBytes(`absent ${i}`) as string as ActionKey);
  const t2 = performance.now();
  for (const k of misses) store.lookupResult(k);
  row("lookups per second, misses", `${Math.round(misses.length / ((performance.now() - t2) / 1000))}/s`);
  store.close();
  rmSync(dir, { recursive: true, force: true });
}

function hasB3sum(): boolean {
  try {
    execFileSync("b3sum", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return existsSync("/usr/bin/b3sum");
  }
}
