// `npm run fuzz [-- TARGET ...]`: every target (or those named) for FUZZ_SECONDS each (default
// 60), as many at once as there are cores, one line per target:
//   <target>: <N> runs, <F> failures, corpus <C>
// A failing input is saved under fuzz/crashes/<target>/ with the command that replays it, and the
// exit status is 1. `npm run fuzz -- --replay FILE` runs one saved input; `--list` names the targets.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { basename, dirname, join, relative } from "node:path";
import { Worker } from "node:worker_threads";
import { corpusDir, crashDir, describe, filesIn, runOne, type FuzzFinding } from "./fuzz-loop.ts";
import { TARGETS, targetNamed, type FuzzTarget } from "./targets.ts";
import type { WorkerData } from "./worker.ts";

/** An input unchanged this long is a hang. */
const HANG_MS = 10_000;
const MEMORY_MB = 1024;
const SHARED_BYTES = 16 << 20;

interface Outcome {
  runs: number;
  findings: (FuzzFinding & { kind: string })[];
}

async function main(args: string[]): Promise<number> {
  if (args.includes("--list")) {
    for (const t of TARGETS) console.log(`${t.name.padEnd(14)} ${t.calls}`);
    return 0;
  }
  const replay = args.indexOf("--replay");
  if (replay >= 0) return replayFile(args[replay + 1]);
  const seconds = Number(process.env.FUZZ_SECONDS ?? 60);
  if (!(seconds > 0)) throw new Error(`FUZZ_SECONDS must be a number of seconds, not ${process.env.FUZZ_SECONDS}`);
  const targets = args.length ? args.map(targetNamed) : [...TARGETS];
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
  console.log(`fuzzing ${targets.length} targets for ${seconds} s each, seed ${seed}`);
  let failed = 0;
  const queue = [...targets];
  await Promise.all(
    Array.from({ length: Math.min(availableParallelism(), queue.length) }, async () => {
      for (let t = queue.shift(); t; t = queue.shift()) {
        const corpus = filesIn(corpusDir(t.name));
        const o = await fuzzTarget(t, corpus.map((c) => c.bytes), seed, seconds * 1000);
        // Each distinct input once (a shrunk finding is often found again from another seed).
        const saved = new Set<string>();
        for (const f of o.findings) {
          if (f.kind === "after the run") {
            console.log(`  ${t.name}: after the run: ${f.error}`);
            continue;
          }
          const file = saveCrash(t.name, f.input);
          if (saved.has(file)) continue;
          saved.add(file);
          console.log(`  ${t.name}: ${f.kind}: ${f.error.split("\n")[0]!.slice(0, 300)}\n    saved ${relative(process.cwd(), file)}; replay: npm run fuzz -- --replay ${relative(process.cwd(), file)}`);
        }
        failed += o.findings.length;
        console.log(`${t.name}: ${o.runs} runs, ${o.findings.length} failures, corpus ${corpus.length}`);
      }
    }),
  );
  return failed ? 1 : 0;
}

/** Runs in workers until the time is spent; a worker that hangs or runs out of memory is ended,
 * its input saved, and a new one goes on with the next seed. */
async function fuzzTarget(t: FuzzTarget, corpus: Uint8Array[], seed: number, timeMs: number): Promise<Outcome> {
  const out: Outcome = { runs: 0, findings: [] };
  const until = Date.now() + timeMs;
  for (let round = 0; Date.now() < until - 200; round++) {
    const shared = new SharedArrayBuffer(8 + SHARED_BYTES);
    const header = new Int32Array(shared, 0, 2);
    const data: WorkerData = { target: t.name, corpus, seed: seed + round * 1009, timeMs: until - Date.now(), shared };
    const worker = new Worker(new URL("./worker-entry.mjs", import.meta.url), { workerData: data, resourceLimits: { maxOldGenerationSizeMb: MEMORY_MB } });
    const current = () => new Uint8Array(shared, 8, Atomics.load(header, 1)).slice();
    const ended = await new Promise<{ done?: { runs: number; findings: FuzzFinding[]; tearDownError?: string }; lost?: string }>((resolve) => {
      let seen = -1;
      let since = Date.now();
      const watch = setInterval(() => {
        const n = Atomics.load(header, 0);
        if (n !== seen) [seen, since] = [n, Date.now()];
        else if (Date.now() - since > HANG_MS) {
          clearInterval(watch);
          resolve({ lost: `hang: one input ran for over ${HANG_MS / 1000} s` });
          void worker.terminate();
        }
      }, 250);
      worker.once("message", (m) => {
        clearInterval(watch);
        resolve({ done: m });
      });
      worker.once("error", (e) => {
        clearInterval(watch);
        const memory = (e as { code?: string }).code === "ERR_WORKER_OUT_OF_MEMORY";
        resolve({ lost: memory ? `memory: one input took over ${MEMORY_MB} MiB` : `crash: ${describe(e)}` });
      });
    });
    if (ended.done) {
      out.runs += ended.done.runs;
      out.findings.push(...ended.done.findings.map((f) => ({ ...f, kind: "failure" })));
      if (ended.done.tearDownError) out.findings.push({ input: new Uint8Array(0), error: ended.done.tearDownError, kind: "after the run" });
      await worker.terminate();
      if (!ended.done.findings.length) break;
    } else {
      // A worker that fails before its first input is wmb's fuzzer failing, not a finding.
      if (Atomics.load(header, 0) === 0) throw new Error(`the ${t.name} fuzzer could not start: ${ended.lost}`);
      out.runs += Atomics.load(header, 0);
      out.findings.push({ input: current(), error: ended.lost!, kind: ended.lost!.split(":")[0]! });
    }
  }
  return out;
}

function saveCrash(target: string, input: Uint8Array): string {
  const dir = crashDir(target);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${createHash("sha256").update(input).digest("hex").slice(0, 16)}.bin`);
  writeFileSync(file, input);
  return file;
}

async function replayFile(file: string | undefined): Promise<number> {
  if (!file) throw new Error("--replay FILE: name a file under fuzz/crashes/<target>/ or fuzz/corpus/<target>/");
  const target = targetNamed(basename(dirname(file)));
  await target.setUp?.();
  try {
    await runOne(target, new Uint8Array(readFileSync(file)));
    console.log(`${target.name}: ${file} is refused or accepted as it should be`);
    return 0;
  } catch (e) {
    console.log(`${target.name}: ${file} fails: ${describe(e)}`);
    return 1;
  } finally {
    await target.tearDown?.();
  }
}

process.exitCode = await main(process.argv.slice(2));
