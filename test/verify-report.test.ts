// What `wmb verify` reports: one digest per output set, progress that never runs past its
// total, the variations it could not apply, and a clock variation that really moves the date.
import { describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeWorkspace, wmbSync } from "./helpers/cli.ts";

const WS = makeWorkspace({
  "BUILD.ts": `export default (w) => {
  const p = w.package("p");
  p.write({ name: "seed", out: "seed.txt", content: "seed\\n" });
  p.run({ name: "multi", srcs: [":seed"], outs: ["a.txt", "b.txt", "c.txt"], cmd: "cp seed.txt a.txt; cp seed.txt b.txt; pwd > c.txt" });
  p.run({ name: "stable3", srcs: [":seed"], outs: ["x.txt", "y.txt", "z.txt"], cmd: "tr a-z A-Z < seed.txt > x.txt; rev seed.txt > y.txt; cat seed.txt seed.txt > z.txt" });
  p.run({ name: "year", outs: ["year.txt"], cmd: "date -u +%Y-%m > year.txt" });
};\n`,
});

interface VerifyJson {
  reproducible: boolean;
  unapplied: { variation: string; reason: string }[];
  rounds: { actions: { label: string; status: string; recordedSet: string; rebuiltSet: string; recorded: Record<string, string>; rebuilt: Record<string, string> }[] }[];
}

function verify(args: string[], env?: Record<string, string>) {
  const r = wmbSync(WS, ["verify", ...args], { env });
  return { ...r, json: args.includes("--json") ? (JSON.parse(r.stdout) as VerifyJson) : undefined };
}

describe("verify's report", () => {
  it("shows one digest for a whole output set: equal when identical, different when one output of the set differs", () => {
    const same = verify(["--vary", "tz", "//p:stable3"]);
    expect(same.code, same.stderr).toBe(0);
    const row = same.stdout.split("\n").find((l) => l.startsWith("//p:stable3"))!;
    const [, , recorded, rebuilt] = row.trim().split(/\s+/);
    expect(recorded).toMatch(/^[0-9a-f]{12}$/);
    expect(rebuilt).toBe(recorded);

    const json = verify(["--json", "--vary", "path", "//p:multi"]).json!;
    const multi = json.rounds[0]!.actions.find((a) => a.label === "//p:multi")!;
    expect(multi.status).toBe("differs");
    expect(multi.rebuiltSet).not.toBe(multi.recordedSet);
    // Two of its three outputs are identical: the old table's "first output" hid the difference.
    expect(multi.rebuilt["a.txt"]).toBe(multi.recorded["a.txt"]);
    expect(multi.rebuilt["c.txt"]).not.toBe(multi.recorded["c.txt"]);
  });

  it("counts progress across the baseline and every round, never past the total", () => {
    const r = verify(["--rounds", "2", "--vary", "tz", "//p:stable3"]);
    expect(r.code, r.stderr).toBe(0);
    const counts = [...r.stderr.matchAll(/\[(\d+)\/(\d+)\]/g)].map((m) => [Number(m[1]), Number(m[2])] as const);
    expect(counts.length).toBeGreaterThan(0);
    for (const [n, total] of counts) expect(n).toBeLessThanOrEqual(total);
    const [last, total] = counts.at(-1)!;
    expect(total).toBe(6); // 2 actions x (baseline + 2 rounds)
    expect(last).toBe(total);
  });

  it("shifts the date seen by command actions when faketime is installed (the wall clock alone would not)", () => {
    const r = verify(["--json", "--vary", "time", "//p:year"]);
    expect(r.json!.unapplied).toEqual([]);
    const year = r.json!.rounds[0]!.actions.find((a) => a.label === "//p:year")!;
    expect(year.status).toBe("differs");
  });

  it("says once which variation it could not apply, and why, on stderr and in --json", () => {
    const noFaketime = mkdtempSync(join(tmpdir(), "wmb-no-faketime-")); // a PATH without faketime
    const r = verify(["--json", "--vary", "time", "//p:year"], { PATH: noFaketime });
    expect(r.json!.unapplied).toEqual([{ variation: "time", reason: expect.stringContaining("apt-get install faketime") }]);
    expect(r.stderr.match(/could not vary time/g)).toHaveLength(1);
    // Without the shifted clock the month is the same: nothing differs.
    expect(r.json!.rounds[0]!.actions.find((a) => a.label === "//p:year")!.status).toBe("identical");
  });
});
