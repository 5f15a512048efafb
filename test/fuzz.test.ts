// npm test's share of the fuzzers (fuzz/): every target replays its seed corpus and every crash
// saved under fuzz/crashes/ (so a fixed crash stays fixed), then runs a short seeded fast-check
// pass: deterministic, a few hundred inputs each. `npm run fuzz` is the long, random run.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { corpusDir, crashDir, describe as describeError, filesIn, fuzz, runOne } from "../fuzz/fuzz-loop.ts";
import { TARGETS } from "../fuzz/targets.ts";

const RUNS = Number(process.env.FUZZ_TEST_RUNS ?? 150);

for (const target of TARGETS) {
  describe(`fuzz target ${target.name}`, () => {
    beforeAll(async () => target.setUp?.());
    afterAll(async () => target.tearDown?.());
    const corpus = filesIn(corpusDir(target.name));
    const crashes = filesIn(crashDir(target.name));

    it("has a seed corpus", () => {
      expect(corpus.length).toBeGreaterThan(0);
    });

    it.each([...corpus.map((f) => ["corpus", f] as const), ...crashes.map((f) => ["crash", f] as const)])("replays %s %s", async (_kind, f) => {
      await runOne(target, f.bytes).catch((e) => {
        throw new Error(`${target.name}: ${f.name}: ${describeError(e)}`);
      });
    });

    it(`${RUNS} seeded inputs: no finding`, async () => {
      const r = await fuzz(target, { corpus: corpus.map((c) => c.bytes), seed: 42, numRuns: RUNS });
      expect(r.findings.map((f) => `${f.error} (input of ${f.input.length} bytes)`)).toEqual([]);
      expect(r.runs).toBe(RUNS);
    }, 120_000);
  });
}
