// The loop every fuzz run shares (npm run fuzz's workers and npm test's replay): fast-check
// draws inputs from a target's arbitrary, runs each, and shrinks a failing one to the smallest
// input that still fails. A refusal the target names is a correct answer; anything else thrown,
// or a Violation, or an input taking over SLOW_MS, is a finding.
import fc from "fast-check";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { FuzzTarget } from "./targets.ts";
import { Violation } from "./targets.ts";

export const FUZZ_DIR = new URL(".", import.meta.url).pathname;
export const SLOW_MS = 5000;

export function corpusDir(target: string): string {
  return join(FUZZ_DIR, "corpus", target);
}
export function crashDir(target: string): string {
  return join(FUZZ_DIR, "crashes", target);
}

/** The files of a directory, sorted, or none when it does not exist. */
export function filesIn(dir: string): { name: string; bytes: Uint8Array }[] {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return [];
  }
  return names.map((name) => ({ name, bytes: new Uint8Array(readFileSync(join(dir, name))) }));
}

/** One input: resolves when it was accepted or correctly refused, throws the finding otherwise. */
export async function runOne(target: FuzzTarget, input: Uint8Array): Promise<void> {
  const t0 = performance.now();
  try {
    await target.run(input);
  } catch (e) {
    if (e instanceof Violation || !target.refuses(e)) throw e;
  }
  const ms = performance.now() - t0;
  if (ms > SLOW_MS) throw new Violation(`one input of ${input.length} bytes took ${Math.round(ms)} ms (at most ${SLOW_MS})`);
}

export interface FuzzFinding {
  input: Uint8Array;
  error: string;
}

/** Runs `target` on inputs from its arbitrary until `budget` is spent; findings shrunk. */
export async function fuzz(
  target: FuzzTarget,
  o: { corpus: readonly Uint8Array[]; seed: number; numRuns?: number; timeMs?: number; onInput?: (input: Uint8Array) => void },
): Promise<{ runs: number; findings: FuzzFinding[] }> {
  const findings: FuzzFinding[] = [];
  let runs = 0;
  const until = o.timeMs === undefined ? Infinity : Date.now() + o.timeMs;
  let seed = o.seed;
  const property = fc.asyncProperty(target.inputs(o.corpus), async (input) => {
    o.onInput?.(input);
    await runOne(target, input);
  });
  while (Date.now() < until && (o.numRuns === undefined || runs < o.numRuns)) {
    const left = until - Date.now();
    const r = await fc.check(property, {
      seed,
      numRuns: o.numRuns === undefined ? Number.MAX_SAFE_INTEGER : o.numRuns - runs,
      ...(Number.isFinite(left) ? { interruptAfterTimeLimit: Math.max(1, left), markInterruptAsFailure: false } : {}),
      endOnFailure: false,
    });
    runs += r.numRuns;
    if (!r.failed) break;
    const input = r.counterexample![0] as Uint8Array;
    findings.push({ input, error: describe(r.errorInstance) });
    seed++;
    if (o.numRuns !== undefined) break; // a replay stops at its first finding
  }
  return { runs, findings };
}

export function describe(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message.slice(0, 500)}${e instanceof Violation ? "" : `\n${(e.stack ?? "").split("\n").slice(1, 6).join("\n")}`}`;
  return String(e);
}
