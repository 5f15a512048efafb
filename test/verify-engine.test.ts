// wmb verify on rules that are not reproducible in known ways, next to ones that are.
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { buildJson, makeWorkspace, wmbSync } from "./helpers/cli.ts";

const FILES = Object.fromEntries("abcdefg".split("").map((c) => [`v/${c}.txt`, `${c}\n`]));
const BUILD = `export default (w) => {
  const p = w.package("v");
  p.run({ name: "stable", srcs: ["a.txt", "b.txt"], outs: ["stable.txt"], cmd: "cat b.txt a.txt | sort > stable.txt" });
  p.run({ name: "time", outs: ["time.txt"], cmd: "date +%s%N > time.txt" });
  p.run({ name: "path", outs: ["path.txt"], cmd: "pwd > path.txt" });
  p.run({ name: "tz", outs: ["tz.txt"], cmd: "date -d @0 +%H:%M > tz.txt" });
  p.run({ name: "listing", srcs: ${JSON.stringify("abcdefg".split("").map((c) => `${c}.txt`))}, outs: ["list.txt"], cmd: "ls -U > list.txt" });
  p.run({ name: "after", srcs: [":time", ":stable"], outs: ["after.txt"], cmd: "cat time.txt stable.txt > after.txt" });
};\n`;

interface VerifyJson {
  reproducible: boolean;
  rounds: {
    actions: { label: string; status: string }[];
    firstDivergence?: { label: string; path: string };
    diff?: { kind: string; text: string };
  }[];
}

function verifyJson(ws: string, label: string, extra: string[] = []): { code: number; report: VerifyJson } {
  const r = wmbSync(ws, ["verify", "--json", ...extra, label]);
  if (r.code !== 0 && r.code !== 1) throw new Error(`verify exited ${r.code}: ${r.stderr}`);
  return { code: r.code, report: JSON.parse(r.stdout) as VerifyJson };
}

describe("wmb verify", () => {
  const ws = makeWorkspace({ "BUILD.ts": BUILD, ...FILES });

  it("passes a deterministic rule", () => {
    const { code, report } = verifyJson(ws, "//v:stable");
    expect(code).toBe(0);
    expect(report.reproducible).toBe(true);
    expect(report.rounds[0]!.actions.map((a) => a.status)).toEqual(["identical"]);
  });

  it.each([
    ["//v:time", "time.txt", /[0-9]{10}/],
    ["//v:path", "path.txt", /wmb-verify-/],
    ["//v:tz", "tz.txt", /\+\d\d:\d\d/],
    ["//v:listing", "list.txt", /[a-g]\.txt/],
  ])("flags %s as the first divergence and shows the differing bytes", (label, path, shown) => {
    const { code, report } = verifyJson(ws, label);
    expect(code).toBe(1);
    const round = report.rounds[0]!;
    expect(round.firstDivergence).toMatchObject({ label, path });
    expect(round.diff!.text).toMatch(shown);
  });

  it("leaves no directory of a varied round behind", () => {
    const r = wmbSync(ws, ["verify", "--json", "--sandbox", "none", "//v:path"]);
    expect(r.code, r.stderr).toBe(1);
    // The round's path as the unsandboxed command saw it: <base>/wmb-run-verify-<id>/round-1/…
    const scratch = /(\/\S*?\/wmb-run-verify-[^/\s]+)\/round-1/.exec((JSON.parse(r.stdout) as VerifyJson).rounds[0]!.diff!.text)?.[1];
    expect(scratch).toBeDefined();
    expect(existsSync(scratch!)).toBe(false);
  });

  it("only varies what --vary names", () => {
    expect(verifyJson(ws, "//v:tz", ["--vary", "path,umask"]).code).toBe(0);
    expect(verifyJson(ws, "//v:listing", ["--vary", "tz,locale,umask"]).code).toBe(0);
  });

  it("marks divergences downstream of the root cause as consequences", () => {
    const { report } = verifyJson(ws, "//v:after");
    const status = Object.fromEntries(report.rounds[0]!.actions.map((a) => [a.label, a.status]));
    expect(status).toEqual({ "//v:time": "differs", "//v:stable": "identical", "//v:after": "consequence" });
    expect(report.rounds[0]!.firstDivergence!.label).toBe("//v:time");
  });

  it("a normal --no-cache build notices a key that produced different output, and the index keeps both", () => {
    const w2 = makeWorkspace({ "BUILD.ts": BUILD, ...FILES });
    buildJson(w2, ["//v:time"]);
    const r = wmbSync(w2, ["build", "--no-cache", "//v:time"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("warning: //v:time produced different output for a key seen before");
    const nd = JSON.parse(wmbSync(w2, ["query", "nondeterministic", "--json"]).stdout);
    expect(nd).toHaveLength(1);
    expect(nd[0].label).toBe("//v:time");
    expect(nd[0].results).toHaveLength(2);
  });

  it("rejects an unknown variation with a usage error", () => {
    const r = wmbSync(ws, ["verify", "--vary", "moon", "//v:stable"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`Unknown variation "moon"`);
  });
});
